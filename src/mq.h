/*-------------------------------------------------------------------------
 *
 * mq.h
 *	  Declarations shared by the source files of the mq extension.
 *
 * mq keeps queues in ordinary tables of the "mq" schema; it writes rows
 * directly through the table AM and reads them through SPI plans prepared
 * once per backend.  This header names the pieces each file owns:
 *
 *	  mq.c		 module entry point (_PG_init), GUCs, the preload check
 *	  catalog.c	 object names, the per-backend caches of queues and
 *				 destinations, the lock protocol of queues/topics/exchanges
 *	  queue.c	 send, send_batch, poll (incl. long poll), pop, ack,
 *				 extend, receipts
 *	  direct.c	 rows inserted without SPI (table AM + index routines)
 *	  relay.c	 mq.relay: one outbox relay pass, C fast path for topics,
 *				 poison rows set aside in mq.outbox_dead, the relay lock
 *	  xact.c	 wake-ups and worker pokes a transaction owes at commit
 *	  counter.c	 per-queue counters: backend moves, shared slots, flush
 *	  attempts.c attempts of deliveries undone by a rollback
 *	  twophase.c prepared transactions: what they owe at commit or
 *				 rollback, kept in mq.prepared_effect until then
 *	  wait.c	 long-poll waiting (mq.poll, mq.fetch) and its wake-ups
 *	  shmem.c	 shared memory allocation and its lock
 *	  worker.c	 the launcher, per-database workers (passes, backoff,
 *				 settings), the DROP/RENAME/COPY DATABASE hook,
 *				 mq.worker_status
 *	  topic.c	 murmur2 (Kafka's partitioner)
 *	  outbox.c	 publish, publish_batch, the outbox triggers, per-key
 *				 locks, the publish buffer
 *	  fetch.c	 fetch and commit of consumer groups
 *	  spi_util.c saved SPI plans (incl. the planner-settings guard and
 *				 latest-snapshot reads), set-returning-function helpers,
 *				 shared argument checks
 *	  acl.c		 privileges: the grant cache and checks, the worker's role,
 *				 the guard that keeps user code off mq's tables
 *
 *-------------------------------------------------------------------------
 */
#ifndef MQ_H
#define MQ_H

#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "utils/array.h"
#include "utils/timestamp.h"

/* Longest queue name, in bytes; like an SQL identifier. */
#define MQ_MAX_NAME_LEN (NAMEDATALEN - 1)

/* Most arguments any saved statement takes. */
#define MQ_STMT_MAX_ARGS 8

/*
 * A queue as the hot paths see it: a copy of its mq.queue row, cached per
 * backend and dropped whenever mq.queue is invalidated.
 */
typedef struct MqQueue
{
	char		name[NAMEDATALEN];	/* hash key; NUL-terminated */
	int32		queue_id;
	Interval	visibility_timeout;
	int32		max_attempts;
	bool		has_dlq;		/* dead_letter_queue_id IS NOT NULL */
	bool		has_ttl;		/* message_ttl IS NOT NULL */
	Interval	message_ttl;
	Interval	dedup_window;
} MqQueue;

/*
 * mq's heavyweight locks.  Every lock mq takes on one of its own objects or
 * activities is an advisory-lock tag whose fourth field is MQ_LOCKTAG_SPACE:
 * user advisory locks (pg_advisory_lock and friends) only ever use 1 and 2
 * there, so no user lock can collide with or block on one of mq's.  The
 * second field is the class below, the third the object (a queue id, a
 * hash, ...).  pg_locks shows them as locktype 'advisory' with objsubid
 * MQ_LOCKTAG_SPACE.  Add new classes here, never reuse a number.
 */
#define MQ_LOCKTAG_SPACE 0x6d71

/*
 * The relay lock of a database still at 0.1.0: its SQL relay and segment
 * maintenance take pg_advisory_xact_lock(28017, 2), in the user
 * advisory-lock space, and every relay pass must agree with the installed
 * SQL.  From 0.2.0 on they take MQ_LOCK_RELAY (mq._lock_relay()), so a
 * user's advisory lock cannot stop the relay.  See mq_relay_lock (relay.c).
 */
#define MQ_RELAY_ADVISORY_KEY1 28017
#define MQ_RELAY_ADVISORY_KEY2 2
/* the function of 0.2.0 on that takes MQ_LOCK_RELAY (its absence: 0.1.0) */
#define MQ_RELAY_LOCK_FUNCTION "_lock_relay"

typedef enum MqLockClass
{
	MQ_LOCK_WORKER_PASS = 1,	/* one maintenance pass per database */
	MQ_LOCK_RELAY = 2,			/* one relay pass per database */
	MQ_LOCK_QUEUE = 3,			/* a queue: shared to use, exclusive to change */
	MQ_LOCK_TOPIC = 4,			/* a topic: likewise */
	MQ_LOCK_EXCHANGE = 5,		/* an exchange: likewise */
	MQ_LOCK_NAME = 6,			/* hash of an object name, while creating */
	MQ_LOCK_PUBLISH_KEY = 7,	/* hash of (destination, key) of publishers */
	MQ_LOCK_GROUP = 8,			/* a consumer group */
	MQ_LOCK_PUBLISH_STRIPE = 9, /* a stripe of MQ_LOCK_PUBLISH_KEY hashes */
	MQ_LOCK_GROUP_MEMBER = 10,	/* hash of (group, member) of a waiting fetch */
	MQ_LOCK_ROUTES = 11			/* the exchange graph, while a change of it
								 * checks the depth of routes */
} MqLockClass;

/*
 * The modes of the object locks (MQ_LOCK_QUEUE, _TOPIC, _EXCHANGE): every
 * operation that uses an object (send, poll, ack, publish, dead-lettering
 * into it, pointing another object at it) holds MQ_LOCKMODE_USE until its
 * transaction ends; drop, purge and alter take MQ_LOCKMODE_CHANGE.  Creating
 * an object takes MQ_LOCKMODE_CHANGE on MQ_LOCK_NAME of its name.  See
 * "Lock protocol" in doc/design.md.
 */
#define MQ_LOCKMODE_USE ShareLock
#define MQ_LOCKMODE_CHANGE ExclusiveLock

/*
 * Key locks of publishers (outbox.c): a transaction locks up to
 * MQ_PUBLISH_KEY_LOCKS distinct keys one by one (enough for the common
 * transaction, so that concurrent publishers of distinct keys never wait
 * for each other), then the stripes (of MQ_PUBLISH_KEY_STRIPES) of further
 * keys, so its footprint in the lock table is bounded.
 */
#define MQ_PUBLISH_KEY_LOCKS 128
#define MQ_PUBLISH_KEY_STRIPES 32

#define MQ_SET_LOCKTAG(tag, cls, id) \
	SET_LOCKTAG_ADVISORY((tag), MyDatabaseId, (uint32) (cls), (uint32) (id), \
						 MQ_LOCKTAG_SPACE)

/* Shared memory sizes (the others are GUCs: see shmem.c) */
#define MQ_WAIT_SLOTS 1024

/* Long-poll waiters of queues hashing here sleep on cv. */
typedef struct MqWaitSlot
{
	pg_atomic_uint64 generation;	/* bumped by every wake-up */
	ConditionVariable cv;
} MqWaitSlot;

/* What a waiter waits for: ready messages of a queue, records of a topic */
typedef enum MqWaitKind
{
	MQ_WAIT_QUEUE = 1,
	MQ_WAIT_TOPIC = 2
} MqWaitKind;

/* One long poll in progress (wait.c) */
typedef struct MqWaiter
{
	MqWaitSlot *slot;			/* NULL until the first mq_wait_arm */
	uint64		generation;		/* the slot's, before the last attempt */
	TimestampTz deadline;		/* end of the wait */
} MqWaiter;

/* A delivery of a message by poll. */
typedef struct MqDelivery
{
	int32		queue_id;
	int64		msg_id;
} MqDelivery;

/* The running totals kept per queue. */
typedef enum MqCounterKind
{
	MQ_SENT,					/* sent, or moved in (dead letters, redrive) */
	MQ_ACKED,					/* acked or popped, or moved out by redrive */
	MQ_DEAD,					/* dead-lettered out, or expired */
	MQ_PURGED,					/* removed by purge_queue */
	MQ_NCOUNTERS
} MqCounterKind;

/* Counter deltas committed but not yet written to mq.queue_counter. */
typedef struct MqCounter
{
	Oid			dboid;
	int32		queue_id;
	int64		n[MQ_NCOUNTERS];
} MqCounter;

/*
 * What mq.worker_status shows of one database's worker.  Written under
 * mq_shared->lock by the worker (its passes) and by the launcher (its
 * launches); read by mq._worker_status().
 */
#define MQ_STATUS_ERROR_LEN 256

typedef enum MqWorkerState
{
	MQ_WS_STOPPED = 0,			/* no process (waiting for the launcher) */
	MQ_WS_STARTING,				/* connecting */
	MQ_WS_IDLE,					/* between passes */
	MQ_WS_RELAY,				/* in the relay step of a pass */
	MQ_WS_MAINTENANCE,			/* in the maintenance step of a pass */
	MQ_WS_BACKOFF,				/* waiting after a failed pass */
	MQ_WS_HELD					/* stopped for DROP/RENAME/COPY DATABASE */
} MqWorkerState;

/* bounds a worker can hit (MqWorkerStatus.bounds) */
#define MQ_WBOUND_BGW_SLOTS		0x01	/* max_worker_processes: no slot */
#define MQ_WBOUND_RELAY_BATCH	0x02	/* last relay step filled its batch */

typedef struct MqWorkerStatus
{
	MqWorkerState state;
	TimestampTz started_at;		/* process start, 0 when not running */
	TimestampTz pass_started;	/* current pass, 0 between passes */
	TimestampTz last_pass_started;
	int64		last_pass_us;	/* duration of the last pass */
	uint64		passes;			/* completed passes (ok or failed) */
	uint64		failed_passes;
	uint64		rows_relayed;
	uint64		launches;		/* registrations by the launcher */
	int32		consecutive_failures;
	TimestampTz last_error_at;
	TimestampTz next_retry;		/* backoff: no pass (or launch) before */
	uint32		bounds;			/* MQ_WBOUND_* hit */
	char		version[16];	/* installed extension version */
	char		last_error[MQ_STATUS_ERROR_LEN];
} MqWorkerStatus;

/*
 * One database with mq (or being probed or held), as the launcher, its
 * worker and the utility hook see it.  Under mq_shared->lock.
 */
typedef struct MqDbWorker
{
	Oid			dboid;			/* InvalidOid: free slot */
	pid_t		pid;			/* worker process, 0 when not running */
	Latch	   *latch;
	bool		recounted;		/* queue depths recounted since shmem init */
	bool		wanted;			/* mq is installed: a worker should run */
	bool		launch_requested;	/* CREATE EXTENSION committed since the
									 * worker last looked */
	pid_t		held_by;		/* backend running DROP/RENAME/COPY, or 0 */
	MqWorkerStatus status;
} MqDbWorker;

/*
 * The bounded structures of shared memory, as mq.shared_state shows them:
 * each has a capacity (a GUC), and what did not fit is counted here (and
 * logged), never dropped silently.
 */
typedef enum MqSharedBound
{
	MQ_BOUND_COUNTERS,			/* queues with pending counter moves */
	MQ_BOUND_ATTEMPTS,			/* messages with uncounted aborted deliveries */
	MQ_BOUND_DATABASES,			/* databases in the worker registry */
	MQ_NBOUNDS
} MqSharedBound;

typedef struct MqShared
{
	LWLock	   *lock;			/* worker registry, launcher */
	LWLock	   *counter_lock;	/* the counter table (counter.c) */
	LWLock	   *attempts_lock;	/* the table of aborted deliveries */
	MqWaitSlot	wait[MQ_WAIT_SLOTS];
	pg_atomic_uint64 overflows[MQ_NBOUNDS];	/* what did not fit, by bound */
	pg_atomic_uint32 nattempts; /* entries of the attempts table */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			max_databases;	/* entries of workers[] */
	MqDbWorker	workers[FLEXIBLE_ARRAY_MEMBER];
} MqShared;

extern MqShared *mq_shared;

/* GUCs */
extern bool mq_worker_enabled;
extern int	mq_naptime_ms;
extern int	mq_max_counters;	/* shmem.c: sizes of shared structures */
extern int	mq_max_attempts_entries;
extern int	mq_max_databases;
extern int	mq_worker_backoff_max_ms;

/* worker backoff: first delay after a failed pass, then doubled */
#define MQ_BACKOFF_BASE_MS 1000

/*
 * One SQL statement of a hot path.  The plan is prepared and saved on first
 * use, then reused by every later call in the backend; the plan cache
 * revalidates it if the objects it uses change.
 */
typedef struct MqStmt
{
	const char *sql;
	int			nargs;
	Oid			argtypes[MQ_STMT_MAX_ARGS];
	SPIPlanPtr	plan;
} MqStmt;

/* shmem.c */
extern void mq_shmem_define_gucs(void);
extern void mq_shmem_init(void);
extern void mq_require_shmem(void);
extern Oid	mq_epoch(void);
extern void mq_shared_overflow(MqSharedBound bound, uint64 n);
extern MqDbWorker *mq_worker_slot(Oid dboid, bool create);
extern void mq_worker_registry_sweep(const Oid *alive, int nalive);
extern void mq_lock_worker_pass(void);
extern int32 mq_murmur2_bytes(const unsigned char *data, int len);

/* wait.c */
extern void mq_wait_shmem_init(MqWaitSlot *slots);
extern MqWaitSlot *mq_wait_slot(MqWaitKind kind, int32 id);
extern MqWaiter *mq_wait_start(MqWaiter *w, const char *what, Interval *wait);
extern void mq_wait_arm(MqWaiter *w, MqWaitKind kind, int32 id);
extern bool mq_wait_over(MqWaiter *w);
extern void mq_wait_sleep(MqWaiter *w, TimestampTz until);
extern void mq_wait_wake(MqWaitKind kind, int32 id);
extern void mq_wait_wake_deliveries(const MqDelivery *d, int n);

/*
 * What a transaction owes the rest of the system when it ends, as
 * PREPARE TRANSACTION keeps it in mq.prepared_effect (twophase.c): one row
 * per item, of the kinds below (the column "effect").
 */
#define MQ_EFFECT_COUNT 'c'		/* counter move: queue, counter, amount */
#define MQ_EFFECT_WAKE_QUEUE 'q'	/* wake the queue's waiters */
#define MQ_EFFECT_WAKE_TOPIC 't'	/* wake the topic's fetchers */
#define MQ_EFFECT_RELAY 'r'		/* poke the relay */
#define MQ_EFFECT_LAUNCH 'l'	/* ask for the database's worker */
#define MQ_EFFECT_DELIVERED 'd' /* a delivery: owed if rolled back */
#define MQ_EFFECT_SETTLED 's'	/* debt applied: settled if committed */

typedef struct MqEffect
{
	char		kind;			/* MQ_EFFECT_* */
	Oid			epoch;			/* mq_epoch() when it was noted */
	int32		object_id;		/* queue or topic id, 0 if none */
	int64		item;			/* msg_id, or the MqCounterKind */
	int64		amount;			/* counter move, or deliveries settled */
} MqEffect;

typedef struct MqEffectList
{
	MqEffect   *items;
	int			n;
	int			max;
} MqEffectList;

/* twophase.c */
extern void mq_twophase_init(void);
extern MqEffect *mq_effect_add(MqEffectList *l, char kind, Oid epoch,
							   int32 object_id, int64 item, int64 amount);
extern uint64 mq_twophase_sweep(void);

/* xact.c */
extern void mq_xact_init(void);
extern void mq_xact_wake(int32 queue_id);
extern void mq_xact_wake_topic(int32 topic_id);
extern void mq_xact_launch_on_commit(void);
extern void mq_xact_relay_on_commit(void);
extern void mq_xact_effects(MqEffectList *l);

/* counter.c */
extern Size mq_counter_shmem_size(void);
extern void mq_counter_shmem_init(void);
extern void mq_counter_init(void);
extern void mq_xact_count(int32 queue_id, MqCounterKind kind, int64 n);
extern void mq_counter_flush(void);
extern int64 mq_counter_entries(void);
extern void mq_counter_effects(MqEffectList *l);

/* attempts.c */
extern Size mq_attempts_shmem_size(void);
extern void mq_attempts_shmem_init(void);
extern void mq_attempts_init(void);
extern void mq_xact_delivered(int32 queue_id, int64 msg_id);
extern void mq_attempts_deliver(Tuplestorestate *store, int32 queue_id);
extern uint64 mq_attempts_apply(void);
extern void mq_attempts_effects(MqEffectList *l);
extern void mq_attempts_settle_on_commit(Oid epoch, int64 msg_id, int32 n);
extern void mq_attempts_owe_effects(const MqEffect *e, int n);

/* worker.c */
extern void mq_worker_init(void);
extern void mq_worker_wake(Oid dboid);
extern void mq_worker_request_launch(Oid dboid);
extern int	mq_installed_version;	/* in a worker: e.g. 200 for 0.2.0 */

/* catalog.c */
extern bool mq_lock_object(MqLockClass cls, int32 id, LOCKMODE mode);
extern void mq_check_queue_name(const char *name, int len);
extern const MqQueue *mq_queue_get(text *queue_name);
extern void mq_catalog_init(void);
extern int64 mq_next_msg_id(void);
extern int64 mq_next_outbox_seq(void);
extern int64 mq_outbox_seq_allocated(void);
extern Oid	mq_queue_relid_get(void);
extern uint64 mq_catalog_generation;

/* direct.c: rows written without SPI */
#define MQ_DIRECT_MAX_COLS 16
#define MQ_DIRECT_MAX_ATTS 64

typedef struct MqDirectRel
{
	const char *relname;		/* table in schema mq */
	int			ncols;			/* columns the caller supplies, ... */
	const char *colnames[MQ_DIRECT_MAX_COLS];	/* ... in this order */
	/* filled in on first use */
	Oid			relid;
	uint64		generation;		/* mq_catalog_generation when looked up */
	int			natts;			/* attributes incl. dropped ones */
	AttrNumber	attnum[MQ_DIRECT_MAX_COLS];
	bool		attbyval[MQ_DIRECT_MAX_COLS];	/* of each supplied column */
	int16		attlen[MQ_DIRECT_MAX_COLS];
} MqDirectRel;

typedef struct MqDirect
{
	MqDirectRel *dr;
	Relation	rel;
	struct EState *estate;
	struct ResultRelInfo *rri;
	TupleDesc	desc;			/* unpinned copy of the table's descriptor */
} MqDirect;

extern void mq_check_writable(const char *what);
extern Oid	mq_direct_relid(MqDirectRel *dr);
extern Oid	mq_direct_relid_missing_ok(MqDirectRel *dr);
extern void mq_direct_check_insert(MqDirectRel *dr);
extern void mq_direct_open(MqDirect *d, MqDirectRel *dr, const char *what,
						   bool check_acl);
extern void mq_direct_insert(MqDirect *d, const Datum *values,
							 const bool *nulls);
extern void mq_direct_insert_many(MqDirect *d, int nrows, const Datum *values,
								  const bool *nulls);
extern void mq_direct_close(MqDirect *d);

/* outbox.c: publishing; mq.publish's rows, written by the end of the statement */
#define MQ_OUTBOX_NCOLS 8
/* rows, and bytes of their values, held before they are written anyway */
#define MQ_OUTBOX_BUFFER_ROWS 1000
#define MQ_OUTBOX_BUFFER_BYTES (8 * 1024 * 1024)
/* room for rows a new batch of the buffer starts with (it grows) */
#define MQ_OUTBOX_BATCH_INITIAL_ROWS 16
extern MqDirectRel mq_rel_outbox;
extern void mq_outbox_init(void);
extern void mq_outbox_buffer_add(const Datum *values, const bool *nulls);
extern void mq_outbox_buffer_flush(void);
extern char mq_dest_kind(const char *name, int len);
extern char mq_dest_lookup(const char *name, int len, int32 *id);

/*
 * acl.c: mq's privileges.  An object is a queue, topic or exchange (its
 * kind and id), or '*' (every object).  The bits are those of mq.acl's
 * privileges column.
 */
#define MQ_KIND_QUEUE 'q'
#define MQ_KIND_TOPIC 't'
#define MQ_KIND_EXCHANGE 'x'
#define MQ_KIND_ALL '*'
#define MQ_KIND_UNKNOWN '?'		/* in messages: a name that is no object */

#define MQ_PRIV_SEND 0x01		/* queue: send, send_batch, publish to it */
#define MQ_PRIV_RECEIVE 0x02	/* queue: poll, pop, ack, nack, extend, ... */
#define MQ_PRIV_PUBLISH 0x04	/* topic, exchange: publish */
#define MQ_PRIV_CONSUME 0x08	/* topic: fetch, commit, seek, groups */
#define MQ_PRIV_MANAGE 0x10		/* alter, purge, drop, bind, grant */
#define MQ_PRIV_CREATE 0x20		/* '*': create queues, topics, exchanges */
#define MQ_PRIV_ALL 0x3f

extern void mq_acl_check(char kind, int32 id, const char *name, uint32 priv);
extern const MqQueue *mq_acl_queue_get(text *queue_name, uint32 priv);
extern void mq_acl_check_text(char kind, int32 id, text *name, uint32 priv);
extern void mq_acl_check_name(const char *name, int len, uint32 priv);
extern void mq_acl_check_arg(FunctionCallInfo fcinfo, int argno, uint32 priv);
extern void mq_acl_check_publish(text *dest);
extern bool mq_acl_become_owner(void);
extern Oid	mq_acl_extension_owner(void);

/* spi_util.c */
extern SPIPlanPtr mq_stmt_plan(MqStmt *stmt);
extern void mq_stmt_exec(MqStmt *stmt, Datum *values, const char *nulls,
						 long count);
extern int	mq_plan_guard(void);
extern void mq_plan_unguard(int level);
extern void mq_stmt_exec_guarded(MqStmt *stmt, Datum *values, const char *nulls,
								 long count);
extern void mq_stmt_exec_latest(MqStmt *stmt, Datum *values, const char *nulls,
								long count);
extern void mq_stmt_exec_latest_write(MqStmt *stmt, Datum *values,
									  const char *nulls, long count);
extern ArrayType *mq_int8_array(const Datum *d, int n);
extern ArrayType *mq_int4_array(const Datum *d, int n);
extern struct HTAB *mq_hash_create(const char *what, Size keysize,
								   Size entrysize, long nelem,
								   MemoryContext cxt);
extern Tuplestorestate *mq_srf_init(FunctionCallInfo fcinfo,
									TupleDesc *tupdesc);

/* argument checks shared by the SQL-callable functions */
extern text *mq_arg_queue_name(FunctionCallInfo fcinfo, int argno);
extern Interval *mq_arg_interval(FunctionCallInfo fcinfo, int argno,
								 const char *argname, Interval *dflt);
extern int32 mq_arg_max_messages(FunctionCallInfo fcinfo, int argno);
extern int	mq_check_array(ArrayType *arr, const char *argname, bool nulls_ok);
extern void mq_check_same_length(int n, int npayloads, const char *argname);

#endif							/* MQ_H */
