-- Sends inside subtransactions: linear in their number, and what they
-- count is what committed.  40,000 sends, each in its own subtransaction
-- (a plpgsql block with an exception handler), must not cost much more than
-- 40,000 plain inserts done the same way (quadratic bookkeeping made it 7x
-- to 14x); every tenth block fails after its send and is rolled back.
SELECT mq.create_queue('sx_q');
CREATE TEMP TABLE sx_t (i int);
CREATE TEMP TABLE sx_time (what text, ms float8);

BEGIN;
DO $$
DECLARE
    t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    FOR i IN 1..40000 LOOP
        BEGIN
            INSERT INTO sx_t VALUES (i);
            IF i % 10 = 0 THEN
                RAISE EXCEPTION 'undo';
            END IF;
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
    END LOOP;
    INSERT INTO sx_time VALUES ('insert', extract(epoch FROM clock_timestamp() - t0) * 1000);
    t0 := clock_timestamp();
    FOR i IN 1..40000 LOOP
        BEGIN
            PERFORM mq.send('sx_q', jsonb_build_object('i', i));
            IF i % 10 = 0 THEN
                RAISE EXCEPTION 'undo';
            END IF;
        EXCEPTION WHEN raise_exception THEN
            NULL;
        END;
    END LOOP;
    INSERT INTO sx_time VALUES ('send', extract(epoch FROM clock_timestamp() - t0) * 1000);
END $$;
-- the transaction sees its own counts: the rolled-back sends are not counted
SELECT total_sent, ready FROM mq.queue_stats WHERE queue_name = 'sx_q';
COMMIT;
SELECT count(*) AS messages FROM mq.queue_message m JOIN mq.queue q USING (queue_id)
 WHERE q.queue_name = 'sx_q';
SELECT (SELECT ms FROM sx_time WHERE what = 'send')
     < 4 * (SELECT ms FROM sx_time WHERE what = 'insert') + 200 AS linear;

SELECT mq.drop_queue('sx_q');
