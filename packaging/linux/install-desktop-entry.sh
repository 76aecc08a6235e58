#!/usr/bin/env bash
# Add LLM Workbench (this source checkout) to the desktop's application launcher, so it opens by
# double-click like any installed app. For the bundled build use the bundle's install.sh.
#
#   packaging/linux/install-desktop-entry.sh            install for this user
#   packaging/linux/install-desktop-entry.sh --remove   remove it again
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
APPS="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
ICONS="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/scalable/apps"
ENTRY="$APPS/llm-workbench.desktop"

if [ "${1:-}" = "--remove" ]; then
    rm -f "$ENTRY" "$ICONS/llm-workbench.svg"
    echo "Removed $ENTRY"
    exit 0
fi

mkdir -p "$APPS" "$ICONS"
cp "$ROOT/resources/icon.svg" "$ICONS/llm-workbench.svg"
sed -e "s|@ROOT@|$ROOT|g" "$ROOT/packaging/linux/llm-workbench.desktop.in" >"$ENTRY"
chmod +x "$ENTRY"
if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$ENTRY"
fi
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database "$APPS" >/dev/null 2>&1 || true
fi
echo "Installed $ENTRY: LLM Workbench now appears in the application launcher."
