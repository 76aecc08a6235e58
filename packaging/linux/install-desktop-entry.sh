#!/usr/bin/env bash
# Add LLM Workbench (this source checkout) to the desktop's application launcher, so it opens by
# double-click like any installed app, and opens .gguf files. For the bundled build (the
# tarball from packaging/build) use the install.sh inside the bundle instead.
#
#   packaging/linux/install-desktop-entry.sh            install for this user
#   packaging/linux/install-desktop-entry.sh --remove   remove it again
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
APPS="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
ICONS="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
ENTRY="$APPS/llm-workbench.desktop"
MIME="${XDG_DATA_HOME:-$HOME/.local/share}/mime"

if [ "${1:-}" = "--remove" ]; then
    rm -f "$ENTRY" "$ICONS/llm-workbench.svg" "$MIME/packages/llm-workbench.xml"
    echo "Removed $ENTRY"
    exit 0
fi

mkdir -p "$APPS" "$ICONS" "$MIME/packages"
cp "$ROOT/resources/icon.svg" "$ICONS/llm-workbench.svg"
cp "$ROOT/packaging/linux/llm-workbench-mime.xml" "$MIME/packages/llm-workbench.xml"
if command -v update-mime-database >/dev/null 2>&1; then
    update-mime-database "$MIME" >/dev/null 2>&1 || true
fi
sed -e "s|@ROOT@|$ROOT|g" "$ROOT/packaging/linux/llm-workbench.desktop.in" >"$ENTRY"
chmod +x "$ENTRY"
if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$ENTRY"
fi
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database "$APPS" >/dev/null 2>&1 || true
fi
echo "Installed $ENTRY: LLM Workbench now appears in the application launcher."
