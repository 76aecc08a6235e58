#!/usr/bin/env bash
# Install an unpacked LLM Workbench bundle (the tarball from packaging/build) for this user:
# the launcher entry, the icons (hicolor sizes), the .gguf file type, and `llm-workbench` on PATH.
# Run it from the bundle folder (it is copied there by the build), or give the folder:
#
#   ./install.sh [BUNDLE_DIR]     install (BUNDLE_DIR defaults to this script's folder)
#   ./install.sh --remove         remove the entry, icons, file type and link again
#
# For a source checkout use install-desktop-entry.sh instead (it launches ./workbench.sh).
set -euo pipefail

DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor"
MIME="$DATA/mime"
BIN="$HOME/.local/bin"
NAME=llm-workbench

refresh() {
    command -v update-mime-database >/dev/null 2>&1 && update-mime-database "$MIME" >/dev/null 2>&1 || true
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$APPS" >/dev/null 2>&1 || true
    command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$ICONS" >/dev/null 2>&1 || true
}

if [ "${1:-}" = "--remove" ]; then
    rm -f "$APPS/$NAME.desktop" "$MIME/packages/$NAME.xml" "$BIN/$NAME"
    find "$ICONS" -name "$NAME.png" -delete 2>/dev/null || true
    find "$ICONS" -name "$NAME.svg" -delete 2>/dev/null || true
    refresh
    echo "Removed LLM Workbench's launcher entry, icons and file type."
    exit 0
fi

BUNDLE=$(cd "${1:-$(dirname "$0")}" && pwd)
if [ ! -x "$BUNDLE/$NAME" ]; then
    echo "No $NAME executable in $BUNDLE: give the unpacked bundle's folder." >&2
    exit 2
fi
mkdir -p "$APPS" "$ICONS" "$MIME/packages" "$BIN"
cp -r "$BUNDLE/icons/hicolor/." "$ICONS/"
cp "$BUNDLE/$NAME-mime.xml" "$MIME/packages/$NAME.xml"
# The entry runs the bundle by absolute path; the PATH link is for terminals.
sed -e "s|^Exec=$NAME |Exec=\"$BUNDLE/$NAME\" |" -e "s|^TryExec=.*||" \
    "$BUNDLE/$NAME.desktop" >"$APPS/$NAME.desktop"
ln -sf "$BUNDLE/$NAME" "$BIN/$NAME"
if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$APPS/$NAME.desktop"
fi
refresh
echo "Installed $APPS/$NAME.desktop: LLM Workbench is in the launcher and opens .gguf files."
