#!/usr/bin/env bash
# test/demo.sh: install, build, start a throwaway cluster and walk through
# mq's main job (test/demo.sql): a queue (send in the business
# transaction, poll, ack, dead letters), the outbox relayed into a
# partitioned topic, a consumer group whose effects and offsets commit
# together, an exchange fanning out to a queue and a topic, and the views
# a DBA watches.  The cluster is stopped and removed at the end.
source "$(dirname "$0")/lib.sh"
mq_setup
mq_psql -f "$MQ_ROOT/test/demo.sql"
echo "demo: done"
