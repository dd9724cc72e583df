//! dbytes-mesh: how pieces travel between gateways and providers.
//!
//! The iroh piece protocol (put, get, range get, audit, stat, delete, sign
//! commitment), the provider daemon with its piece store, and the client the
//! gateway uses. It is not for S3 (`dbytes-gateway`) nor for the books and
//! the chain (`dbytes-ledger`), which it calls to check deals.
