#!/bin/sh
# A CLI that streams two text deltas, then dies with a message on stderr.
if [ "$1" = "--version" ]; then echo "0.0.0 (fake midstream)"; exit 0; fi
read -r line
echo '{"type":"system","subtype":"init","session_id":"fake","model":"claude-sonnet-5"}'
echo '{"type":"stream_event","event":{"type":"message_start","message":{"id":"msg_1","model":"claude-sonnet-5","usage":{"input_tokens":3,"output_tokens":1}}}}'
echo '{"type":"stream_event","event":{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}}'
echo '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"partial "}}}'
echo '{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"answer"}}}'
sleep 0.2
echo "panic: lost the plot halfway" >&2
exit 7
