#!/bin/sh
# A CLI whose stdout is not stream-json, and which then stays alive (the
# daemon must kill it, with the child it started).
if [ "$1" = "--version" ]; then echo "0.0.0 (fake garbage)"; exit 0; fi
read -r line
echo '{"type":"system","subtype":"init","session_id":"fake","model":"claude-sonnet-5"}'
echo 'Segmentation fault: this is not stream-json'
sleep 30 &
wait
