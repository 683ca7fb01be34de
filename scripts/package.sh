#!/usr/bin/env bash
# Builds the release `handler` and stages dist/ for the Functions host:
#   dist/host.json, dist/handler, dist/<function>/function.json for each folder in functions/.
# The host only scans folders directly beside host.json, so functions/* cannot be published
# from the repository as it stands.
#
#   scripts/package.sh                     static x86_64-unknown-linux-musl binary (Azure)
#   scripts/package.sh --target TRIPLE     another target (tests stage the host's own)
#   scripts/package.sh --binary PATH       stage an already-built handler (no cargo build)
#
# Then: cd dist && func azure functionapp publish <app>
set -euo pipefail
cd "$(dirname "$0")/.."

target="x86_64-unknown-linux-musl"
binary=""
out="dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "package.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

built_for="$target"
if [ -n "$binary" ]; then
  built_for="prebuilt $binary"
else
  if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "package.sh: the Rust target $target is not installed." >&2
    echo "  rustup target add $target" >&2
    [ "${target%musl}" != "$target" ] && echo "  and for musl: apt-get install musl-tools" >&2
    exit 1
  fi
  cargo build --release --locked --target "$target" --bin handler
  binary="target/$target/release/handler"
fi

rm -rf "$out"
mkdir -p "$out"
cp host.json "$out/"
install -m 0755 "$binary" "$out/handler"
for f in functions/*/; do
  name=$(basename "$f")
  mkdir -p "$out/$name"
  cp "$f/function.json" "$out/$name/"
done
echo "staged $out/: host.json, handler ($built_for), $(ls -d functions/*/ | wc -l) functions"
