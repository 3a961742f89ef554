/*-------------------------------------------------------------------------
 *
 * attempts.c
 *	  Attempts of deliveries that a rollback undid.
 *
 * poll raises a message's attempt in the consumer's transaction; when that
 * transaction (or the subtransaction that polled) rolls back, the raise is
 * undone with it.  So that a consumer that keeps failing in locked mode
 * still drives a poison message to its dead-letter queue, this file notes
 * every delivery in backend memory and, when a rollback undoes it, adds it
 * as a debt to the message's entry in a shared table (one entry per
 * message: database, installation of mq, msg_id -> deliveries owed).  A
 * prepared transaction's deliveries are kept with it (twophase.c) and
 * become debts if ROLLBACK PREPARED undoes them.
 *
 * A debt is settled by whoever next raises the message's attempt while
 * holding its row lock: the next poll that delivers the message adds what
 * is owed to the attempt it returns (so a redelivered message shows the
 * attempt it is), and the worker's pass (mq_attempts_apply) adds it to a
 * leased message or to one the debt exhausts.  Either way the amount is
 * read after the row is locked and leaves shared memory only when the
 * transaction that applied it commits; a pass or a poll that fails, rolls
 * back or is rolled back to a savepoint loses nothing.  The debts of
 * messages that are gone are dropped by the pass, as are entries of a
 * dropped database or a dropped installation of mq.  The table is bounded
 * by mq.max_aborted_deliveries; deliveries that do not fit are logged and
 * counted (mq.shared_state).
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

/* A message's debts in shared memory. */
typedef struct MqAttemptsKey
{
	Oid			dboid;
	Oid			epoch;			/* mq_epoch() of the installation */
	int64		msg_id;
} MqAttemptsKey;

typedef struct MqAttemptsEntry
{
	MqAttemptsKey key;
	int32		queue_id;
	int32		owed;			/* deliveries not yet counted */
} MqAttemptsEntry;

/* A delivery by poll in this transaction, or a debt it settles at commit */
typedef struct MqAttemptsNote
{
	Oid			epoch;
	int32		queue_id;
	int64		msg_id;
	int32		n;				/* settlements: the amount applied */
	SubTransactionId subid;
} MqAttemptsNote;

/* a growing list of notes, ordered by subid (see xact.c's wake list) */
typedef struct MqAttemptsList
{
	MqAttemptsNote *notes;
	int			n;
	int			max;
} MqAttemptsList;

static HTAB *mq_attempts = NULL;
static MqAttemptsList mq_delivered = {NULL, 0, 0};
static MqAttemptsList mq_settled = {NULL, 0, 0};

/* the most messages one pass looks at */
#define MQ_ATTEMPTS_BATCH 10000

/*
 * $1 msg_ids, $2 deliveries owed by each (as copied before locking): lock
 * the rows the pass will change, those leased (in flight) or exhausted by
 * the debt.  A ready row is left alone so that a rollback makes its message
 * available again at once (the next poll settles the debt); rows locked by
 * someone are skipped.
 */
static MqStmt mq_stmt_attempts_lock = {
	"SELECT m.msg_id FROM mq.queue_message m"
	"  JOIN ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS d(msg_id, n)"
	"    ON m.msg_id OPERATOR(pg_catalog.=) d.msg_id"
	"  JOIN mq.queue q ON q.queue_id OPERATOR(pg_catalog.=) m.queue_id"
	" WHERE m.vt OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()"
	"    OR (q.dead_letter_queue_id IS NOT NULL AND"
	"        m.attempt OPERATOR(pg_catalog.+) d.n OPERATOR(pg_catalog.>=) q.max_attempts)"
	" FOR UPDATE OF m SKIP LOCKED",
	2, {INT8ARRAYOID, INT4ARRAYOID}
};

/* $1 msg_ids, $2 deliveries owed by each (read under the row locks) */
static MqStmt mq_stmt_attempts_add = {
	"UPDATE mq.queue_message m"
	"   SET attempt = m.attempt OPERATOR(pg_catalog.+) d.n,"
	"       exhausted = (q.dead_letter_queue_id IS NOT NULL AND"
	"                    m.attempt OPERATOR(pg_catalog.+) d.n OPERATOR(pg_catalog.>=) q.max_attempts)"
	"  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS d(msg_id, n),"
	"       mq.queue q"
	" WHERE m.msg_id OPERATOR(pg_catalog.=) d.msg_id"
	"   AND d.n OPERATOR(pg_catalog.>) 0"
	"   AND q.queue_id OPERATOR(pg_catalog.=) m.queue_id"
	" RETURNING m.msg_id, d.n, m.attempt",
	2, {INT8ARRAYOID, INT4ARRAYOID}
};

/* $1 msg_ids: those that still exist */
static MqStmt mq_stmt_still_there = {
	"SELECT m.msg_id FROM mq.queue_message m"
	" WHERE m.msg_id OPERATOR(pg_catalog.=) ANY ($1)",
	1, {INT8ARRAYOID}
};

/*
 * mq_attempts_shmem_size
 *		Bytes of the table of debts.
 */
Size
mq_attempts_shmem_size(void)
{
	return hash_estimate_size(mq_max_attempts_entries, sizeof(MqAttemptsEntry));
}

/*
 * mq_attempts_shmem_init
 *		Create or attach to the table of debts; from the shmem startup hook
 *		(caller holds AddinShmemInitLock).
 */
void
mq_attempts_shmem_init(void)
{
	HASHCTL		info;

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(MqAttemptsKey);
	info.entrysize = sizeof(MqAttemptsEntry);
	mq_attempts = ShmemInitHash("mq aborted deliveries", mq_max_attempts_entries,
								mq_max_attempts_entries, &info,
								HASH_ELEM | HASH_BLOBS);
}

/*
 * mq_attempts_key
 *		Fill a hash key (padding zeroed).
 */
static void
mq_attempts_key(MqAttemptsKey *key, Oid dboid, Oid epoch, int64 msg_id)
{
	memset(key, 0, sizeof(*key));
	key->dboid = dboid;
	key->epoch = epoch;
	key->msg_id = msg_id;
}

/*
 * mq_attempts_list_add
 *		Append a note to a list (in TopMemoryContext).
 */
static MqAttemptsNote *
mq_attempts_list_add(MqAttemptsList *l)
{
	MqAttemptsNote *note;

	if (l->n == l->max)
	{
		l->max = l->max ? l->max * 2 : 64;
		if (l->notes == NULL)
			l->notes = MemoryContextAlloc(TopMemoryContext,
										  l->max * sizeof(MqAttemptsNote));
		else
			l->notes = repalloc(l->notes, l->max * sizeof(MqAttemptsNote));
	}
	note = &l->notes[l->n++];
	memset(note, 0, sizeof(*note));
	note->subid = GetCurrentSubTransactionId();
	return note;
}

/*
 * mq_attempts_list_subxact_end
 *		A subtransaction ends: its notes (the suffix with subid >= mySubid)
 *		become its parent's if it committed; otherwise they are cut off and
 *		the index of the first one is returned (the list's length if none).
 */
static int
mq_attempts_list_subxact_end(MqAttemptsList *l, bool commit,
							 SubTransactionId mySubid,
							 SubTransactionId parentSubid)
{
	int			first = l->n;
	int			i;

	while (first > 0 && l->notes[first - 1].subid >= mySubid)
		first--;
	if (commit)
	{
		for (i = first; i < l->n; i++)
			l->notes[i].subid = parentSubid;
		return l->n;
	}
	return first;
}

/*
 * mq_attempts_owe
 *		Add deliveries undone by a rollback to their messages' debts, wake
 *		the worker, and wake the waiters of their queues (the messages are
 *		ready again).  Runs at (sub)transaction abort: never errors.
 */
static void
mq_attempts_owe(const MqAttemptsNote *d, int n)
{
	int			i;
	uint64		lost = 0;

	if (mq_shared == NULL || n == 0)
		return;
	LWLockAcquire(mq_shared->attempts_lock, LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		MqAttemptsKey key;
		MqAttemptsEntry *e;
		bool		found;

		mq_attempts_key(&key, MyDatabaseId, d[i].epoch, d[i].msg_id);
		e = hash_search(mq_attempts, &key, HASH_FIND, NULL);
		if (e == NULL)
		{
			if (hash_get_num_entries(mq_attempts) >= mq_max_attempts_entries ||
				(e = hash_search(mq_attempts, &key, HASH_ENTER_NULL, &found)) == NULL)
			{
				lost++;
				continue;
			}
			e->queue_id = d[i].queue_id;
			e->owed = 0;
			pg_atomic_fetch_add_u32(&mq_shared->nattempts, 1);
		}
		e->owed++;
	}
	LWLockRelease(mq_shared->attempts_lock);
	if (lost > 0)
		mq_shared_overflow(MQ_BOUND_ATTEMPTS, lost);
	mq_worker_wake(MyDatabaseId);

	/* the messages are ready again at once: wake their queues' waiters */
	for (i = 0; i < n; i++)
		if (i == 0 || d[i].queue_id != d[i - 1].queue_id)
		{
			MqDelivery	one;

			one.queue_id = d[i].queue_id;
			one.msg_id = d[i].msg_id;
			mq_wait_wake_deliveries(&one, 1);
		}
}

/*
 * mq_attempts_settle
 *		At commit: take what this transaction applied out of the debts; an
 *		entry that owes nothing more is freed.  Never errors.
 */
static void
mq_attempts_settle(void)
{
	int			i;

	if (mq_shared == NULL || mq_settled.n == 0)
		return;
	LWLockAcquire(mq_shared->attempts_lock, LW_EXCLUSIVE);
	for (i = 0; i < mq_settled.n; i++)
	{
		MqAttemptsNote *s = &mq_settled.notes[i];
		MqAttemptsKey key;
		MqAttemptsEntry *e;

		mq_attempts_key(&key, MyDatabaseId, s->epoch, s->msg_id);
		e = hash_search(mq_attempts, &key, HASH_FIND, NULL);
		if (e == NULL)
			continue;
		e->owed -= s->n;
		if (e->owed <= 0)
		{
			(void) hash_search(mq_attempts, &key, HASH_REMOVE, NULL);
			pg_atomic_fetch_sub_u32(&mq_shared->nattempts, 1);
		}
	}
	LWLockRelease(mq_shared->attempts_lock);
}

/*
 * mq_attempts_owed
 *		Deliveries owed by msg_id (0 if none).  Read it only while holding
 *		the message's row lock: then no one else can settle it meanwhile.
 */
static int32
mq_attempts_owed(Oid epoch, int64 msg_id)
{
	MqAttemptsKey key;
	MqAttemptsEntry *e;
	int32		owed = 0;

	mq_attempts_key(&key, MyDatabaseId, epoch, msg_id);
	LWLockAcquire(mq_shared->attempts_lock, LW_SHARED);
	e = hash_search(mq_attempts, &key, HASH_FIND, NULL);
	if (e != NULL)
		owed = e->owed;
	LWLockRelease(mq_shared->attempts_lock);
	return owed;
}

/*
 * mq_attempts_settle_on_commit
 *		Note that this (sub)transaction applied n owed deliveries of msg_id.
 */
void
mq_attempts_settle_on_commit(Oid epoch, int64 msg_id, int32 n)
{
	MqAttemptsNote *s = mq_attempts_list_add(&mq_settled);

	s->epoch = epoch;
	s->msg_id = msg_id;
	s->n = n;
}

/*
 * mq_xact_delivered
 *		Note that poll delivered msg_id in this (sub)transaction.
 */
void
mq_xact_delivered(int32 queue_id, int64 msg_id)
{
	MqAttemptsNote *d = mq_attempts_list_add(&mq_delivered);

	d->epoch = mq_epoch();
	d->queue_id = queue_id;
	d->msg_id = msg_id;
}

/*
 * mq_attempts_deliver
 *		poll delivered the rows of SPI_tuptable (mq.message rows, locked by
 *		the poll): note each delivery, and add to the attempt of a message
 *		with a debt what it owes, in the table and in the row returned, so
 *		the consumer sees the attempt it is.  The debt leaves shared memory
 *		when the poll commits.  Copies the rows into store; SPI_tuptable and
 *		SPI_processed are as they were on return.  Inside SPI.
 */
void
mq_attempts_deliver(Tuplestorestate *store, int32 queue_id)
{
	SPITupleTable *tt = SPI_tuptable;
	uint64		ntup = SPI_processed;
	TupleDesc	desc = tt->tupdesc;
	Oid			epoch = mq_epoch();
	int			attno = SPI_fnumber(desc, "attempt");
	bool		owing = mq_shared != NULL &&
		pg_atomic_read_u32(&mq_shared->nattempts) > 0;
	Datum	   *ids = NULL;
	Datum	   *owed = NULL;
	int			nowed = 0;
	uint64		i;

	if (owing)
	{
		ids = palloc(sizeof(Datum) * ntup);
		owed = palloc(sizeof(Datum) * ntup);
	}
	for (i = 0; i < ntup; i++)
	{
		bool		isnull;
		int64		msg_id = DatumGetInt64(SPI_getbinval(tt->vals[i], desc, 1, &isnull));
		int32		n;

		mq_xact_delivered(queue_id, msg_id);
		if (owing && (n = mq_attempts_owed(epoch, msg_id)) > 0)
		{
			ids[nowed] = Int64GetDatum(msg_id);
			owed[nowed] = Int32GetDatum(n);
			nowed++;
		}
	}
	if (nowed > 0)
	{
		Datum		values[2];
		uint64		j;

		values[0] = PointerGetDatum(mq_int8_array(ids, nowed));
		values[1] = PointerGetDatum(mq_int4_array(owed, nowed));
		mq_stmt_exec(&mq_stmt_attempts_add, values, NULL, 0);
		for (j = 0; j < SPI_processed; j++)
		{
			bool		isnull;
			HeapTuple	r = SPI_tuptable->vals[j];
			int64		msg_id = DatumGetInt64(SPI_getbinval(r, SPI_tuptable->tupdesc, 1, &isnull));
			int32		n = DatumGetInt32(SPI_getbinval(r, SPI_tuptable->tupdesc, 2, &isnull));
			Datum		attempt = SPI_getbinval(r, SPI_tuptable->tupdesc, 3, &isnull);

			mq_attempts_settle_on_commit(epoch, msg_id, n);
			for (i = 0; i < ntup; i++)
			{
				bool		null2;

				if (DatumGetInt64(SPI_getbinval(tt->vals[i], desc, 1, &null2)) == msg_id)
				{
					int			col = attno;
					bool		nl = false;

					tt->vals[i] = heap_modify_tuple_by_cols(tt->vals[i], desc, 1,
															&col, &attempt, &nl);
					break;
				}
			}
		}
	}
	for (i = 0; i < ntup; i++)
		tuplestore_puttuple(store, tt->vals[i]);
	SPI_tuptable = tt;
	SPI_processed = ntup;
}

/*
 * mq_attempts_effects
 *		Add this transaction's deliveries (owed if it rolls back) and
 *		settlements (taken out of the debts if it commits) to l; PREPARE
 *		TRANSACTION keeps them (twophase.c).
 */
void
mq_attempts_effects(MqEffectList *l)
{
	int			i;

	for (i = 0; i < mq_delivered.n; i++)
		(void) mq_effect_add(l, MQ_EFFECT_DELIVERED, mq_delivered.notes[i].epoch,
							 mq_delivered.notes[i].queue_id,
							 mq_delivered.notes[i].msg_id, 1);
	for (i = 0; i < mq_settled.n; i++)
		(void) mq_effect_add(l, MQ_EFFECT_SETTLED, mq_settled.notes[i].epoch,
							 0, mq_settled.notes[i].msg_id,
							 mq_settled.notes[i].n);
}

/*
 * mq_attempts_owe_effects
 *		ROLLBACK PREPARED undid the deliveries among e[0..n-1] (the other
 *		items are ignored): they become debts now, as at a plain rollback.
 *		Never errors (runs after the rollback is done).
 */
void
mq_attempts_owe_effects(const MqEffect *e, int n)
{
	MqAttemptsNote *d = palloc0(sizeof(MqAttemptsNote) * Max(n, 1));
	int			nd = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (e[i].kind != MQ_EFFECT_DELIVERED)
			continue;
		d[nd].epoch = e[i].epoch;
		d[nd].queue_id = e[i].object_id;
		d[nd].msg_id = e[i].item;
		nd++;
	}
	mq_attempts_owe(d, nd);
	pfree(d);
}

/*
 * mq_attempts_xact_callback
 *		A rolled-back transaction's deliveries become debts; a committed one
 *		settles the debts it applied.  A prepared one's were saved
 *		(twophase.c): ROLLBACK PREPARED makes them debts, COMMIT PREPARED
 *		settles.
 */
static void
mq_attempts_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			mq_attempts_owe(mq_delivered.notes, mq_delivered.n);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			mq_attempts_settle();
			break;
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	mq_delivered.n = 0;
	mq_settled.n = 0;
}

/*
 * mq_attempts_subxact_callback
 *		A rolled-back subtransaction undid its deliveries (they become debts
 *		now) and its settlements (forgotten: the debts stay).  A committed
 *		one passes both to its parent.
 */
static void
mq_attempts_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							 SubTransactionId parentSubid, void *arg)
{
	bool		commit = (event == SUBXACT_EVENT_COMMIT_SUB);
	int			first;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	first = mq_attempts_list_subxact_end(&mq_delivered, commit, mySubid, parentSubid);
	if (!commit)
	{
		mq_attempts_owe(&mq_delivered.notes[first], mq_delivered.n - first);
		mq_delivered.n = first;
	}
	first = mq_attempts_list_subxact_end(&mq_settled, commit, mySubid, parentSubid);
	if (!commit)
		mq_settled.n = first;
}

/*
 * mq_attempts_init
 *		Register the transaction callbacks; once per backend.
 */
void
mq_attempts_init(void)
{
	RegisterXactCallback(mq_attempts_xact_callback, NULL);
	RegisterSubXactCallback(mq_attempts_subxact_callback, NULL);
}

/*
 * mq_attempts_collect
 *		Copy up to max debts of this database's installation epoch into
 *		ids/owed; remove the entries no one will settle (another epoch of
 *		this database, or a database that was dropped).  Returns how many
 *		were copied.
 */
static int
mq_attempts_collect(Oid epoch, Datum *ids, Datum *owed, int max)
{
	HASH_SEQ_STATUS seq;
	MqAttemptsEntry *e;
	MqAttemptsKey *stale = NULL;
	int			nstale = 0;
	int			maxstale = 0;
	int			n = 0;
	int			i;

	LWLockAcquire(mq_shared->attempts_lock, LW_SHARED);
	hash_seq_init(&seq, mq_attempts);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->key.dboid == MyDatabaseId && e->key.epoch == epoch)
		{
			if (n < max)
			{
				ids[n] = Int64GetDatum(e->key.msg_id);
				owed[n] = Int32GetDatum(e->owed);
				n++;
			}
			continue;
		}
		if (nstale == maxstale)
		{
			maxstale = maxstale ? maxstale * 2 : 64;
			stale = stale ? repalloc(stale, maxstale * sizeof(MqAttemptsKey))
				: palloc(maxstale * sizeof(MqAttemptsKey));
		}
		stale[nstale++] = e->key;
	}
	LWLockRelease(mq_shared->attempts_lock);

	for (i = 0; i < nstale; i++)
		if (stale[i].dboid != MyDatabaseId &&
			SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(stale[i].dboid)))
			stale[i].dboid = InvalidOid;
	if (nstale > 0)
	{
		LWLockAcquire(mq_shared->attempts_lock, LW_EXCLUSIVE);
		for (i = 0; i < nstale; i++)
			if (OidIsValid(stale[i].dboid) &&
				hash_search(mq_attempts, &stale[i], HASH_REMOVE, NULL) != NULL)
				pg_atomic_fetch_sub_u32(&mq_shared->nattempts, 1);
		LWLockRelease(mq_shared->attempts_lock);
	}
	return n;
}

/*
 * mq_int64_cmp
 *		qsort/bsearch comparator of int64s.
 */
static int
mq_int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/*
 * mq_attempts_apply
 *		The pass: count the debts of this database as attempts where they
 *		apply now (see mq_stmt_attempts_lock), and drop those of messages
 *		that are gone; the rest wait.  Takes the pass lock; what it applied
 *		leaves shared memory when the transaction commits.  Inside SPI.
 *		Returns the deliveries counted.
 */
uint64
mq_attempts_apply(void)
{
	Oid			epoch;
	Datum	   *ids;
	Datum	   *owed;
	int			n;
	int			nlocked;
	int			i;
	uint64		j;
	uint64		done = 0;
	Datum		values[2];
	int64	   *locked;

	mq_lock_worker_pass();
	if (mq_shared == NULL || pg_atomic_read_u32(&mq_shared->nattempts) == 0)
		return 0;
	epoch = mq_epoch();
	ids = palloc(sizeof(Datum) * MQ_ATTEMPTS_BATCH);
	owed = palloc(sizeof(Datum) * MQ_ATTEMPTS_BATCH);
	n = mq_attempts_collect(epoch, ids, owed, MQ_ATTEMPTS_BATCH);
	if (n == 0)
		return 0;

	/* lock the rows to change, then read what they owe under the locks */
	values[0] = PointerGetDatum(mq_int8_array(ids, n));
	values[1] = PointerGetDatum(mq_int4_array(owed, n));
	mq_stmt_exec(&mq_stmt_attempts_lock, values, NULL, 0);
	nlocked = (int) SPI_processed;
	locked = palloc(sizeof(int64) * Max(nlocked, 1));
	for (i = 0; i < nlocked; i++)
	{
		bool		isnull;

		locked[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (nlocked > 0)
	{
		Datum	   *lids = palloc(sizeof(Datum) * nlocked);
		Datum	   *lowed = palloc(sizeof(Datum) * nlocked);

		for (i = 0; i < nlocked; i++)
		{
			lids[i] = Int64GetDatum(locked[i]);
			lowed[i] = Int32GetDatum(mq_attempts_owed(epoch, locked[i]));
		}
		values[0] = PointerGetDatum(mq_int8_array(lids, nlocked));
		values[1] = PointerGetDatum(mq_int4_array(lowed, nlocked));
		mq_stmt_exec(&mq_stmt_attempts_add, values, NULL, 0);
		for (j = 0; j < SPI_processed; j++)
		{
			bool		isnull;
			int64		msg_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[j],
															 SPI_tuptable->tupdesc, 1, &isnull));
			int32		k = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[j],
														SPI_tuptable->tupdesc, 2, &isnull));

			mq_attempts_settle_on_commit(epoch, msg_id, k);
			done += k;
		}
	}

	/* debts of messages that are gone are dropped (at commit) */
	values[0] = PointerGetDatum(mq_int8_array(ids, n));
	mq_stmt_exec(&mq_stmt_still_there, values, NULL, 0);
	{
		int64	   *there = palloc(sizeof(int64) * Max(SPI_processed, 1));
		uint64		nthere = SPI_processed;

		for (j = 0; j < nthere; j++)
		{
			bool		isnull;

			there[j] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[j],
												   SPI_tuptable->tupdesc, 1, &isnull));
		}
		qsort(there, nthere, sizeof(int64), mq_int64_cmp);
		for (i = 0; i < n; i++)
		{
			int64		msg_id = DatumGetInt64(ids[i]);

			if (bsearch(&msg_id, there, nthere, sizeof(int64), mq_int64_cmp) == NULL)
				mq_attempts_settle_on_commit(epoch, msg_id, DatumGetInt32(owed[i]));
		}
	}
	return done;
}
