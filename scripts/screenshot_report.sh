#!/usr/bin/env bash
# Render an ECG explanation report in headless Chromium and save a PNG screenshot.
#
#   scripts/screenshot_report.sh REPORT.html [OUT.png] [WIDTH] [HEIGHT]
#
# Needs Debian's `chromium` (apt-get install -y chromium). The report is opened from disk with
# the network and every background service off, so the screenshot also shows that the page is
# self-contained (it has no external resources to load). Exit status: 0 when the PNG was
# written, 2 on bad arguments or a missing browser, 1 when Chromium failed.
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1" ]]; then
    echo "usage: $0 REPORT.html [OUT.png] [WIDTH] [HEIGHT]" >&2
    exit 2
fi
report=$(readlink -f "$1")
out=${2:-${report%.html}.png}
width=${3:-1300}
height=${4:-2400}
browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$browser" ]]; then
    echo "error: chromium not found; install it with: apt-get install -y chromium" >&2
    exit 2
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
out_abs=$(readlink -f "$(dirname "$out")")/$(basename "$out")
"$browser" --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --hide-scrollbars \
    --window-size="${width},${height}" --screenshot="$out_abs" "file://$report" \
    >/dev/null 2>&1 || { echo "error: chromium failed on $report" >&2; exit 1; }
[[ -s "$out_abs" ]] || { echo "error: no screenshot written to $out_abs" >&2; exit 1; }
echo "$out_abs"
