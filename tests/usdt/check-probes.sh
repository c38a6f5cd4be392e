#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
#
# The USDT trace points of docs/tracing.md are in the built library: every probe of provider
# "iovaq" the documentation lists is in libiovaq.so's .note.stapsdt, with its argument count,
# and there is no probe the documentation does not list.
#
#   check-probes.sh LIBIOVAQ.so DOCS/tracing.md HAVE_SDT
# Exit 77 (skip) when the library was built without <sys/sdt.h> (HAVE_SDT not ON/1/TRUE).

set -euo pipefail
lib=$1 doc=$2 have=$3
case ${have^^} in
ON | 1 | TRUE | YES) ;;
*)
	echo "SKIP: built without <sys/sdt.h> (install systemtap-sdt-dev)"
	exit 77
	;;
esac
command -v readelf >/dev/null || { echo "SKIP: no readelf"; exit 77; }

# "Provider: iovaq / Name: map / ... Arguments: 8@%rax 8@%rdx -4@%ecx" -> "map 3"
notes=$(readelf -n "$lib")
built=$(awk '/Provider: iovaq/ { p = 1; next }
	     p && /Name:/ { name = $2; next }
	     p && /Arguments:/ { print name, NF - 1; p = 0 }' <<<"$notes" | sort -u)
# docs/tracing.md's probe table rows: "| `map` | 3 | ..." -> "map 3"
documented=$(sed -n 's/^| `\([a-z_]*\)` | \([0-9]\) |.*/\1 \2/p' "$doc" | sort -u)
[ -n "$documented" ] || { echo "FAIL: no probe table in $doc"; exit 1; }
if [ "$built" != "$documented" ]; then
	echo "FAIL: probes in $lib and in $doc differ"
	diff <(echo "$documented") <(echo "$built") | sed 's/^</  documented only:/; s/^>/  built only:/'
	exit 1
fi
echo "ok: $(wc -l <<<"$built") probes: $(tr '\n' ' ' <<<"$built")"
