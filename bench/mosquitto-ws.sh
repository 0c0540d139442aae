#!/bin/bash
# Debian's mosquitto as a chat-bench server (chat-bench --mqtt --spawn bench/mosquitto-ws.sh):
# one MQTT-over-WebSocket listener on 127.0.0.1, anonymous clients, no persistence, the
# broker's default limits otherwise (1000 messages queued and 20 in flight per client).
#
#   mosquitto-ws.sh [MOSQUITTO (mosquitto)]
#
# Prints "mosquitto listening on 127.0.0.1:PORT" once the broker runs, and becomes the broker
# (exec): the pid chat-bench measures is mosquitto's. The websockets listener cannot take port
# 0, so two free ports are picked; mosquitto 2.0.11 starts no websockets listener unless a
# plain MQTT listener is configured too, which the second port is (unused by the bench).
set -eu
MOSQUITTO=${1:-mosquitto}
read -r ws tcp < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
# The broker logs to stderr (unbuffered), into a filter that passes on only its "running" line,
# rewritten, and reads everything else, so that the broker never blocks on a full pipe.
exec 2> >(sed -un "s/.*mosquitto version .* running.*/mosquitto listening on 127.0.0.1:$ws/p")
exec "$MOSQUITTO" -c /dev/stdin <<EOF
listener $ws 127.0.0.1
protocol websockets
listener $tcp 127.0.0.1
protocol mqtt
allow_anonymous true
persistence false
connection_messages false
log_dest stderr
log_type error
log_type warning
log_type information
EOF
