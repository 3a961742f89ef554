# test/bench/common.sh: what every benchmark script shares (sourced after
# ../lib.sh): the payload, the server setting, the bare-SQL reference table.

# The same ~100-byte JSON object for every workload and every system.
PAYLOAD='{"event": "order.created", "order_id": 1234567, "customer": "cust-000042", "total": 4299, "cur": "EUR"}'

# Queue tables churn: vacuum them as soon as their thresholds are crossed
# (the same setting serves mq and the bare reference).  See doc/design.md.
MQ_EXTRA_CONF="autovacuum_naptime = 1s
${MQ_EXTRA_CONF:-}"
export MQ_EXTRA_CONF

# The bare-SQL queue of ../../../shared/ANCHORS.md ("Measured here").
# shellcheck disable=SC2034 # used by the scripts that source this file
BARE_DDL='CREATE TABLE bare (
    id          bigserial PRIMARY KEY,
    vt          timestamptz,
    read_ct     int,
    enqueued_at timestamptz,
    payload     jsonb);
CREATE INDEX bare_vt_idx ON bare (vt);'
