#!/usr/bin/env bash
# Wrap "LLM Workbench.app" in a compressed .dmg with an /Applications link (drag to install).
# Unverified: written for macOS (hdiutil), not run here.
#
#   packaging/macos/make-dmg.sh "dist/LLM Workbench.app" dist/LLM-Workbench.dmg
set -euo pipefail
APP=$1
DMG=$2
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
rm -f "$DMG"
hdiutil create -volname "LLM Workbench" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
if [ -n "${WORKBENCH_CODESIGN_IDENTITY:-}" ]; then
    codesign --force --timestamp --sign "$WORKBENCH_CODESIGN_IDENTITY" "$DMG"
fi
echo "dmg: $(du -sh "$DMG" | cut -f1) $DMG"
