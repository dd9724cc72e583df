#!/usr/bin/env bash
# The command-line S3 clients people use, against a dBytes gateway:
# aws-cli (s3 cp/sync/ls/rm/mb/rb; s3api versioning and multipart on a
# 100 MiB file) and rclone (copy, sync, check on many small files).
#
# Run by gateway/tests/devnet.rs with DBYTES_ENDPOINT and AWS_* set and HOME
# a scratch directory. `write` uploads everything and checks it; `verify`
# (after providers were stopped) reads everything back and checks it again.
set -euo pipefail

phase=${1:?usage: cli_clients.sh write|verify}
E=(--endpoint-url "$DBYTES_ENDPOINT")
W="$HOME/work"
step() { echo "== $*"; }

export RCLONE_CONFIG_DB_TYPE=s3
export RCLONE_CONFIG_DB_PROVIDER=Other
export RCLONE_CONFIG_DB_ENDPOINT="$DBYTES_ENDPOINT"
export RCLONE_CONFIG_DB_ACCESS_KEY_ID="$AWS_ACCESS_KEY_ID"
export RCLONE_CONFIG_DB_SECRET_ACCESS_KEY="$AWS_SECRET_ACCESS_KEY"
export RCLONE_CONFIG_DB_REGION=us-east-1
export RCLONE_CONFIG_DB_FORCE_PATH_STYLE=true
RCLONE=(rclone --config /dev/null --retries 1 --low-level-retries 1 --stats 0)

if [ "$phase" = write ]; then
  mkdir -p "$W/tree/a/b" "$W/small"
  head -c 104857600 /dev/urandom >"$W/big.bin"
  for i in $(seq 1 40); do head -c $((i * 1537)) /dev/urandom >"$W/tree/a/f$i"; done
  for i in $(seq 1 10); do head -c $((i * 4099)) /dev/urandom >"$W/tree/a/b/g$i"; done
  for i in $(seq 1 200); do head -c $((i * 37 % 5000)) /dev/urandom >"$W/small/s$i.txt"; done

  step "aws s3 mb, cp (multipart) and ls"
  aws "${E[@]}" s3 mb s3://cli
  aws "${E[@]}" s3 cp --no-progress "$W/big.bin" s3://cli/big.bin
  aws "${E[@]}" s3 ls s3://cli/ | grep -q " 104857600 big.bin"
  aws "${E[@]}" s3 cp --no-progress s3://cli/big.bin "$W/big.back"
  cmp "$W/big.bin" "$W/big.back"

  step "aws s3 sync, rm, sync --delete"
  aws "${E[@]}" s3 sync --no-progress "$W/tree" s3://cli/tree
  test "$(aws "${E[@]}" s3 ls --recursive s3://cli/tree/ | wc -l)" -eq 50
  aws "${E[@]}" s3 rm s3://cli/tree/a/f1
  rm "$W/tree/a/f2"
  aws "${E[@]}" s3 sync --no-progress --delete "$W/tree" s3://cli/tree
  listing=$(aws "${E[@]}" s3 ls --recursive s3://cli/tree/)
  echo "$listing" | grep -q "tree/a/f1$"
  ! echo "$listing" | grep -q "tree/a/f2$"
  test "$(echo "$listing" | wc -l)" -eq 49

  step "s3api versioning"
  aws "${E[@]}" s3api create-bucket --bucket ver >/dev/null
  aws "${E[@]}" s3api put-bucket-versioning --bucket ver --versioning-configuration Status=Enabled
  test "$(aws "${E[@]}" s3api get-bucket-versioning --bucket ver --query Status --output text)" = Enabled
  v1=$(aws "${E[@]}" s3api put-object --bucket ver --key doc --body "$W/tree/a/f3" --query VersionId --output text)
  v2=$(aws "${E[@]}" s3api put-object --bucket ver --key doc --body "$W/tree/a/f4" --query VersionId --output text)
  test "$v1" != "$v2"
  echo "$v1" >"$W/v1.id"
  aws "${E[@]}" s3api get-object --bucket ver --key doc --version-id "$v1" "$W/v1.out" >/dev/null
  cmp "$W/v1.out" "$W/tree/a/f3"
  aws "${E[@]}" s3api delete-object --bucket ver --key doc >/dev/null
  ! aws "${E[@]}" s3api head-object --bucket ver --key doc >/dev/null 2>&1
  test "$(aws "${E[@]}" s3api list-object-versions --bucket ver --query 'length(Versions)')" -eq 2
  test "$(aws "${E[@]}" s3api list-object-versions --bucket ver --query 'length(DeleteMarkers)')" -eq 1

  step "s3api multipart on the 100 MiB file"
  (cd "$W" && split -b 41943040 big.bin part.)
  uid=$(aws "${E[@]}" s3api create-multipart-upload --bucket cli --key mp.bin --query UploadId --output text)
  aws "${E[@]}" s3api list-multipart-uploads --bucket cli --query 'Uploads[].UploadId' --output text | grep -q "$uid"
  parts=""
  n=0
  for part in "$W"/part.*; do
    n=$((n + 1))
    etag=$(aws "${E[@]}" s3api upload-part --bucket cli --key mp.bin --part-number $n --upload-id "$uid" --body "$part" --query ETag --output text)
    parts="$parts{\"ETag\":$etag,\"PartNumber\":$n},"
  done
  test "$(aws "${E[@]}" s3api list-parts --bucket cli --key mp.bin --upload-id "$uid" --query 'length(Parts)')" -eq $n
  aws "${E[@]}" s3api complete-multipart-upload --bucket cli --key mp.bin --upload-id "$uid" \
    --multipart-upload "{\"Parts\":[${parts%,}]}" >/dev/null
  aws "${E[@]}" s3api head-object --bucket cli --key mp.bin --query ETag --output text | grep -q -- "-$n\""
  aws "${E[@]}" s3 cp --no-progress s3://cli/mp.bin "$W/mp.back"
  cmp "$W/big.bin" "$W/mp.back"
  aborted=$(aws "${E[@]}" s3api create-multipart-upload --bucket cli --key gone.bin --query UploadId --output text)
  aws "${E[@]}" s3api upload-part --bucket cli --key gone.bin --part-number 1 --upload-id "$aborted" --body "$W/part.aa" >/dev/null
  aws "${E[@]}" s3api abort-multipart-upload --bucket cli --key gone.bin --upload-id "$aborted"
  ! aws "${E[@]}" s3api list-multipart-uploads --bucket cli --query 'Uploads[].UploadId' --output text | grep -q "$aborted"

  step "rclone copy, check, sync"
  "${RCLONE[@]}" mkdir db:rcl
  "${RCLONE[@]}" copy "$W/small" db:rcl/small
  "${RCLONE[@]}" check "$W/small" db:rcl/small
  rm "$W/small/s1.txt" "$W/small/s2.txt"
  head -c 777 /dev/urandom >"$W/small/s3.txt"
  head -c 999 /dev/urandom >"$W/small/new.txt"
  "${RCLONE[@]}" sync "$W/small" db:rcl/small
  "${RCLONE[@]}" check "$W/small" db:rcl/small
  test "$("${RCLONE[@]}" lsf db:rcl/small | wc -l)" -eq 199

  step "aws s3 rm --recursive and rb"
  aws "${E[@]}" s3 mb s3://scratch
  aws "${E[@]}" s3 cp --no-progress "$W/tree/a/f5" s3://scratch/x
  if refused=$(aws "${E[@]}" s3 rb s3://scratch 2>&1); then
    echo "rb of a non-empty bucket succeeded"
    exit 1
  fi
  echo "$refused" | grep -q BucketNotEmpty
  aws "${E[@]}" s3 rm --recursive s3://scratch
  aws "${E[@]}" s3 rb s3://scratch
  ! aws "${E[@]}" s3 ls | grep -q " scratch$"
else
  step "read everything back"
  aws "${E[@]}" s3 cp --no-progress s3://cli/big.bin "$W/big.again"
  cmp "$W/big.bin" "$W/big.again"
  aws "${E[@]}" s3 cp --no-progress s3://cli/mp.bin "$W/mp.again"
  cmp "$W/big.bin" "$W/mp.again"
  mkdir -p "$W/tree.again"
  aws "${E[@]}" s3 sync --no-progress s3://cli/tree "$W/tree.again"
  diff -r "$W/tree" "$W/tree.again"
  "${RCLONE[@]}" check "$W/small" db:rcl/small
  aws "${E[@]}" s3api get-object --bucket ver --key doc --version-id "$(cat "$W/v1.id")" "$W/v.out" >/dev/null
  cmp "$W/v.out" "$W/tree/a/f3"
fi
echo "ok cli-clients $phase"
