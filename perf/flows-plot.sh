#!/bin/bash
# Throughput against the number of parallel TCP flows (issue 16), ours and
# the C pasta's, through the tap in both directions: runs
# ../shared/bench/compare.sh for 1, 4 and 16 iperf3 flows (-P) and draws
# the medians as a text chart (for perf/README.md) and as perf/flows.svg.
#
#   perf/flows-plot.sh [-n REPS] [-t SECONDS] [PROGRAM...]
#
# PROGRAMs default to the 2025 C pasta (/opt/passt-ref/usr/bin/pasta, see
# ../shared/bench/build-reference.sh) and ./bin/pasta. Run as root on an
# otherwise quiet machine; every run is in a made namespace (compare.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=3; T=4
while getopts n:t: o; do case $o in n) REPS=$OPTARG;; t) T=$OPTARG;; *) exit 2;; esac; done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- /opt/passt-ref/usr/bin/pasta "$PWD/bin/pasta"
COMPARE=${COMPARE:-$(cd .. && pwd)/shared/bench/compare.sh}
[ -x "$COMPARE" ] || COMPARE=/work/shared/bench/compare.sh
SCEN="tcp_out_tap tcp_out_tap_p4 tcp_out_tap_p16 tcp_in_tap tcp_in_tap_p4 tcp_in_tap_p16"
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
"$COMPARE" -n "$REPS" -t "$T" -s "$SCEN" "$@" | tee "$OUT"

python3 - "$OUT" perf/flows.svg "$@" <<'EOF'
import sys
table, svg_path, progs = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = {}
for line in open(table):
    f = line.split()
    if f and f[0].startswith('tcp_') and len(f) == 1 + len(progs):
        rows[f[0]] = [float(x) if x != '-' else 0.0 for x in f[1:]]
def name(p):
    if 'passt-ref' in p:
        return 'C pasta 2025'
    if p.startswith('/usr/bin/'):
        return 'C pasta (Debian)'
    return 'passt-ts' + (' ' + ' '.join(p.split()[1:]) if ' ' in p else '')
names = [name(p) for p in progs]
series = {}  # (direction, program) -> [(flows, gbps)]
for s, vals in rows.items():
    base = s.rsplit('_p', 1)[0] if '_p' in s.split('tap')[-1] else s
    flows = int(s.rsplit('_p', 1)[1]) if base != s else 1
    for i, v in enumerate(vals):
        series.setdefault((base, names[i]), []).append((flows, v))
top = max([v for pts in series.values() for _, v in pts] + [1.0])
print('\n```')
for (d, n), pts in sorted(series.items()):
    for flows, v in sorted(pts):
        bar = '#' * int(round(40 * v / top))
        print(f'{d:12} {n:28} -P {flows:<3} {v:6.2f} Gbit/s {bar}')
print('```')
# SVG: one line per (direction, program), x = flows (log scale 1, 4, 16)
W, H, L, B = 640, 360, 60, 40
xs = {1: 0.0, 4: 0.5, 16: 1.0}
colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b']
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<line x1="{L}" y1="{H - B}" x2="{W - 20}" y2="{H - B}" stroke="black"/>',
         f'<line x1="{L}" y1="20" x2="{L}" y2="{H - B}" stroke="black"/>',
         f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">parallel TCP flows (iperf3 -P)</text>',
         f'<text x="14" y="{H / 2}" transform="rotate(-90 14 {H / 2})" text-anchor="middle">Gbit/s</text>']
px = lambda f: L + 20 + xs[f] * (W - L - 60)
py = lambda v: (H - B) - v / top * (H - B - 30)
for f in xs:
    parts.append(f'<text x="{px(f)}" y="{H - B + 16}" text-anchor="middle">{f}</text>')
for k in range(5):
    v = top * k / 4
    parts.append(f'<text x="{L - 6}" y="{py(v) + 4}" text-anchor="end">{v:.1f}</text>')
for i, ((d, n), pts) in enumerate(sorted(series.items())):
    c = colors[i % len(colors)]
    dash = '' if n.startswith('passt-ts') else ' stroke-dasharray="6 4"'
    pts = sorted(pts)
    parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="' +
                 ' '.join(f'{px(f):.1f},{py(v):.1f}' for f, v in pts) + '"/>')
    parts.append(f'<text x="{W - 200}" y="{30 + 16 * i}" fill="{c}">{d} {n}</text>')
parts.append('</svg>')
open(svg_path, 'w').write('\n'.join(parts) + '\n')
print(f'\n(chart written to {svg_path})')
EOF
