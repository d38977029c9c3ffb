#!/bin/sh
# A CLI that reads the request, complains on stderr and dies.
if [ "$1" = "--version" ]; then echo "0.0.0 (fake crash)"; exit 0; fi
read -r line
echo "starting up" >&2
echo "fatal: the fake CLI crashed on purpose (code 3)" >&2
exit 3
