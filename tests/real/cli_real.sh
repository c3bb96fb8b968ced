#!/usr/bin/env bash
# ctest entry point (label "real"): `memvisor walk` against QEMU on a real
# Linux guest, see run.sh. The --dump times are reported here but not held
# to a limit (the machine running the suite may be loaded or sanitized);
# `make test-real` holds them to 1 s.
exec "$(dirname "$0")/run.sh" --no-time-limit "$1"
