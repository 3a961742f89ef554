/*-------------------------------------------------------------------------
 *
 * counter.c
 *	  The per-queue running totals (sent, acked, dead, purged): every
 *	  place they live, and every move between those places.
 *
 * A transaction notes its counter moves in backend memory (mq_xact_count).
 * When it commits, the moves are added to the queue's slot in shared
 * memory; a rolled-back (sub)transaction's moves are forgotten; a prepared
 * one's are kept in the prepared transaction (twophase.c).  The
 * worker's pass (mq_counter_flush) writes what shared memory holds to
 * mq.queue_counter and takes the same amounts out of shared memory as
 * negative moves of its own transaction, so they leave shared memory only
 * when the write commits: a reader of mq.queue_stats (mq._pending_counters
 * plus the table) never sees a move twice or not at all, and a failed
 * pass loses nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(mq_sql_count);
PG_FUNCTION_INFO_V1(mq_sql_pending_counters);

/* A queue's counters in shared memory, of one installation of mq. */
typedef struct MqCounterKey
{
	Oid			dboid;
	Oid			epoch;			/* mq_epoch() of the installation */
	int32		queue_id;
} MqCounterKey;

/*
 * The entry: found under counter_lock (shared suffices to add, since the
 * amounts are atomics), created and removed under it exclusively.
 */
typedef struct MqCounterEntry
{
	MqCounterKey key;
	pg_atomic_uint64 n[MQ_NCOUNTERS];
} MqCounterEntry;

/* One queue's moves made by one (sub)transaction, not yet committed. */
typedef struct MqCounterMove
{
	int32		queue_id;
	Oid			epoch;
	SubTransactionId subid;
	int64		n[MQ_NCOUNTERS];
} MqCounterMove;

static HTAB *mq_counters = NULL;

/*
 * The transaction's moves, ordered by subid: entries are appended by the
 * current subtransaction (the highest alive), so an ending
 * subtransaction's moves are a suffix, and each operation looks only at
 * one level: n subtransactions cost O(n).
 */
static MqCounterMove *mq_moves = NULL;
static int	mq_nmoves = 0;
static int	mq_maxmoves = 0;

/* this transaction wrote counters out: free settled entries at commit */
static bool mq_counter_flushed = false;

/* the most counters mq_counter_flush writes in one pass */
#define MQ_FLUSH_BATCH 65536

static MqStmt mq_stmt_flush_counter = {
	"UPDATE mq.queue_counter SET"
	" total_sent = total_sent OPERATOR(pg_catalog.+) $2,"
	" total_acked = total_acked OPERATOR(pg_catalog.+) $3,"
	" total_dead = total_dead OPERATOR(pg_catalog.+) $4,"
	" total_purged = total_purged OPERATOR(pg_catalog.+) $5,"
	" updated_at = pg_catalog.now()"
	" WHERE queue_id OPERATOR(pg_catalog.=) $1",
	5, {INT4OID, INT8OID, INT8OID, INT8OID, INT8OID}
};

/*
 * mq_counter_shmem_size
 *		Bytes of the counter table.
 */
Size
mq_counter_shmem_size(void)
{
	return hash_estimate_size(mq_max_counters, sizeof(MqCounterEntry));
}

/*
 * mq_counter_shmem_init
 *		Create or attach to the counter table; from the shmem startup hook
 *		(caller holds AddinShmemInitLock).
 */
void
mq_counter_shmem_init(void)
{
	HASHCTL		info;

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(MqCounterKey);
	info.entrysize = sizeof(MqCounterEntry);
	mq_counters = ShmemInitHash("mq counters", mq_max_counters, mq_max_counters,
								&info, HASH_ELEM | HASH_BLOBS);
}

/*
 * mq_counter_key
 *		Fill a hash key (padding zeroed).
 */
static void
mq_counter_key(MqCounterKey *key, Oid dboid, Oid epoch, int32 queue_id)
{
	memset(key, 0, sizeof(*key));
	key->dboid = dboid;
	key->epoch = epoch;
	key->queue_id = queue_id;
}

/*
 * mq_counter_add
 *		Add committed deltas to a queue's entry.  The common case (the entry
 *		exists) takes the lock shared and adds atomically, so committers do
 *		not queue behind each other.  Returns false if the table is full
 *		(the moves are not kept).  Runs at commit: never errors.
 */
static bool
mq_counter_add(Oid dboid, Oid epoch, int32 queue_id, const int64 *n)
{
	MqCounterKey key;
	MqCounterEntry *c;
	int			k;

	mq_counter_key(&key, dboid, epoch, queue_id);
	LWLockAcquire(mq_shared->counter_lock, LW_SHARED);
	c = hash_search(mq_counters, &key, HASH_FIND, NULL);
	if (c == NULL)
	{
		bool		found;

		LWLockRelease(mq_shared->counter_lock);
		LWLockAcquire(mq_shared->counter_lock, LW_EXCLUSIVE);
		c = hash_search(mq_counters, &key, HASH_FIND, NULL);
		if (c == NULL && hash_get_num_entries(mq_counters) < mq_max_counters)
		{
			c = hash_search(mq_counters, &key, HASH_ENTER_NULL, &found);
			if (c != NULL && !found)
				for (k = 0; k < MQ_NCOUNTERS; k++)
					pg_atomic_init_u64(&c->n[k], 0);
		}
	}
	if (c != NULL)
	{
		for (k = 0; k < MQ_NCOUNTERS; k++)
			if (n[k] != 0)
				pg_atomic_fetch_add_u64(&c->n[k], (uint64) n[k]);
	}
	LWLockRelease(mq_shared->counter_lock);
	return c != NULL;
}

/*
 * mq_counter_entries
 *		Entries of the counter table in use, server-wide.
 */
int64
mq_counter_entries(void)
{
	int64		n;

	LWLockAcquire(mq_shared->counter_lock, LW_SHARED);
	n = (int64) hash_get_num_entries(mq_counters);
	LWLockRelease(mq_shared->counter_lock);
	return n;
}

/*
 * mq_counter_take
 *		Copy out the pending counters of (dboid, epoch) that are not all
 *		zero.  Returns the number of entries written to out (at most max).
 *		With stale (may be NULL), also lists in stale and nstale the entries
 *		that no installation will ever write: of another epoch of dboid, or
 *		of a database other than dboid (the caller checks that it still
 *		exists).
 */
static int
mq_counter_take(Oid dboid, Oid epoch, MqCounter *out, int max,
				MqCounterKey **stale, int *nstale)
{
	HASH_SEQ_STATUS seq;
	MqCounterEntry *c;
	int			n = 0;
	int			maxstale = 0;

	if (stale != NULL)
	{
		*stale = NULL;
		*nstale = 0;
	}
	LWLockAcquire(mq_shared->counter_lock, LW_SHARED);
	hash_seq_init(&seq, mq_counters);
	while ((c = hash_seq_search(&seq)) != NULL)
	{
		int			k;
		bool		zero = true;

		if (c->key.dboid != dboid || c->key.epoch != epoch)
		{
			if (stale == NULL)
				continue;
			if (*nstale == maxstale)
			{
				maxstale = maxstale ? maxstale * 2 : 64;
				*stale = *stale ? repalloc(*stale, maxstale * sizeof(MqCounterKey))
					: palloc(maxstale * sizeof(MqCounterKey));
			}
			(*stale)[(*nstale)++] = c->key;
			continue;
		}
		if (n == max)
			continue;
		out[n].dboid = dboid;
		out[n].queue_id = c->key.queue_id;
		for (k = 0; k < MQ_NCOUNTERS; k++)
		{
			out[n].n[k] = (int64) pg_atomic_read_u64(&c->n[k]);
			zero = zero && out[n].n[k] == 0;
		}
		if (!zero)
			n++;
	}
	LWLockRelease(mq_shared->counter_lock);
	return n;
}

/*
 * mq_counter_move
 *		The pending moves of queue_id in the current subtransaction,
 *		created on demand.
 */
static MqCounterMove *
mq_counter_move(int32 queue_id)
{
	int			i;
	MqCounterMove *m;
	SubTransactionId subid = GetCurrentSubTransactionId();
	Oid			epoch = mq_epoch();

	for (i = mq_nmoves - 1; i >= 0 && mq_moves[i].subid == subid; i--)
		if (mq_moves[i].queue_id == queue_id && mq_moves[i].epoch == epoch)
			return &mq_moves[i];
	if (mq_nmoves == mq_maxmoves)
	{
		mq_maxmoves = mq_maxmoves ? mq_maxmoves * 2 : 8;
		if (mq_moves == NULL)
			mq_moves = MemoryContextAlloc(TopMemoryContext,
										  mq_maxmoves * sizeof(MqCounterMove));
		else
			mq_moves = repalloc(mq_moves, mq_maxmoves * sizeof(MqCounterMove));
	}
	m = &mq_moves[mq_nmoves++];
	memset(m, 0, sizeof(*m));
	m->queue_id = queue_id;
	m->epoch = epoch;
	m->subid = subid;
	return m;
}

/*
 * mq_xact_count
 *		Move the queue's counters when this transaction commits.
 */
void
mq_xact_count(int32 queue_id, MqCounterKind kind, int64 n)
{
	mq_counter_move(queue_id)->n[kind] += n;
}

/*
 * mq_counter_own
 *		This transaction's counter moves so far (of installation epoch), one
 *		entry per queue, so that mq.queue_stats shows a transaction its own
 *		work.  Returns how many entries were written to out (at most max).
 */
static int
mq_counter_own(Oid epoch, MqCounter *out, int max)
{
	int			i;
	int			j;
	int			n = 0;
	int			k;

	for (i = 0; i < mq_nmoves; i++)
	{
		if (mq_moves[i].epoch != epoch)
			continue;
		for (j = 0; j < n; j++)
			if (out[j].queue_id == mq_moves[i].queue_id)
				break;
		if (j == n)
		{
			if (n == max)
				break;
			memset(&out[n], 0, sizeof(MqCounter));
			out[n].dboid = MyDatabaseId;
			out[n].queue_id = mq_moves[i].queue_id;
			n++;
		}
		for (k = 0; k < MQ_NCOUNTERS; k++)
			out[j].n[k] += mq_moves[i].n[k];
	}
	return n;
}

/*
 * mq_counter_free_settled
 *		Remove this database's entries that are all zero (written out by a
 *		pass that committed).  Adders hold the lock shared while they find
 *		and add, so none is halfway through an entry removed here.
 */
static void
mq_counter_free_settled(void)
{
	HASH_SEQ_STATUS seq;
	MqCounterEntry *c;

	LWLockAcquire(mq_shared->counter_lock, LW_EXCLUSIVE);
	hash_seq_init(&seq, mq_counters);
	while ((c = hash_seq_search(&seq)) != NULL)
	{
		int			k;
		bool		zero = true;

		if (c->key.dboid != MyDatabaseId)
			continue;
		for (k = 0; k < MQ_NCOUNTERS && zero; k++)
			zero = pg_atomic_read_u64(&c->n[k]) == 0;
		if (zero)
			(void) hash_search(mq_counters, &c->key, HASH_REMOVE, NULL);
	}
	LWLockRelease(mq_shared->counter_lock);
}

/*
 * mq_counter_publish
 *		At commit: add the transaction's moves to shared memory.
 */
static void
mq_counter_publish(void)
{
	int			i;
	int			k;
	uint64		lost = 0;

	if (mq_shared == NULL)
		return;
	for (i = 0; i < mq_nmoves; i++)
		for (k = 0; k < MQ_NCOUNTERS; k++)
			if (mq_moves[i].n[k] != 0)
			{
				if (!mq_counter_add(MyDatabaseId, mq_moves[i].epoch,
									mq_moves[i].queue_id, mq_moves[i].n))
					lost++;
				break;
			}
	if (mq_counter_flushed)
		mq_counter_free_settled();
	if (lost > 0)
		mq_shared_overflow(MQ_BOUND_COUNTERS, lost);
}

/*
 * mq_counter_effects
 *		Add this transaction's counter moves to l (one item per queue and
 *		counter that moved); PREPARE TRANSACTION keeps them (twophase.c).
 */
void
mq_counter_effects(MqEffectList *l)
{
	int			i;
	int			k;

	for (i = 0; i < mq_nmoves; i++)
		for (k = 0; k < MQ_NCOUNTERS; k++)
			if (mq_moves[i].n[k] != 0)
				(void) mq_effect_add(l, MQ_EFFECT_COUNT, mq_moves[i].epoch,
									 mq_moves[i].queue_id, k,
									 mq_moves[i].n[k]);
}

/*
 * mq_counter_xact_callback
 *		End of a top-level transaction: publish the moves at commit, forget
 *		them otherwise (at PREPARE they were saved, see twophase.c).
 */
static void
mq_counter_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			mq_counter_publish();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	mq_nmoves = 0;
	mq_counter_flushed = false;
}

/*
 * mq_counter_subxact_callback
 *		A committed subtransaction passes its moves to its parent; a
 *		rolled-back one forgets them.
 *
 * The list is ordered by subid: moves are appended by the current
 * subtransaction, whose id is the highest alive, and an ending
 * subtransaction's moves (the suffix with subid >= mySubid) are dropped or
 * merged into its parent's, which precede them.  Each (sub)transaction
 * keeps one entry per queue, and every step touches one level's entries:
 * n sends in n subtransactions cost O(n), not O(n^2).
 */
static void
mq_counter_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							SubTransactionId parentSubid, void *arg)
{
	int			first = mq_nmoves;
	int			parent_first;
	int			keep;
	int			i;
	int			j;
	int			k;

	if (event != SUBXACT_EVENT_COMMIT_SUB && event != SUBXACT_EVENT_ABORT_SUB)
		return;
	while (first > 0 && mq_moves[first - 1].subid >= mySubid)
		first--;
	if (event == SUBXACT_EVENT_ABORT_SUB || first == mq_nmoves)
	{
		mq_nmoves = first;
		return;
	}
	parent_first = first;
	while (parent_first > 0 && mq_moves[parent_first - 1].subid == parentSubid)
		parent_first--;
	keep = first;
	for (i = first; i < mq_nmoves; i++)
	{
		for (j = parent_first; j < keep; j++)
			if (mq_moves[j].queue_id == mq_moves[i].queue_id &&
				mq_moves[j].epoch == mq_moves[i].epoch)
				break;
		if (j < keep)
		{
			for (k = 0; k < MQ_NCOUNTERS; k++)
				mq_moves[j].n[k] += mq_moves[i].n[k];
			continue;
		}
		mq_moves[keep] = mq_moves[i];
		mq_moves[keep].subid = parentSubid;
		keep++;
	}
	mq_nmoves = keep;
}

/*
 * mq_counter_init
 *		Register the transaction callbacks; once per backend.
 */
void
mq_counter_init(void)
{
	RegisterXactCallback(mq_counter_xact_callback, NULL);
	RegisterSubXactCallback(mq_counter_subxact_callback, NULL);
}

/*
 * mq_counter_flush
 *		Write the counters kept in shared memory to mq.queue_counter.  The
 *		amounts written are taken out of shared memory when the transaction
 *		commits (as negative moves), and entries that reach zero are freed
 *		then, so a reader of mq.queue_stats never sees them twice or not at
 *		all, a failed pass loses nothing, and the entries of dropped queues
 *		do not stay.  Entries no installation will write (another epoch of
 *		this database, or a database that was dropped) are removed.  Takes
 *		the pass lock.  Inside SPI.
 */
void
mq_counter_flush(void)
{
	int			max = Min(mq_max_counters, MQ_FLUSH_BATCH);
	MqCounter  *c = palloc(sizeof(MqCounter) * max);
	MqCounterKey *stale;
	int			nstale;
	int			n;
	int			i;

	mq_lock_worker_pass();
	n = mq_counter_take(MyDatabaseId, mq_epoch(), c, max, &stale, &nstale);
	for (i = 0; i < n; i++)
	{
		Datum		values[1 + MQ_NCOUNTERS];
		int			k;

		values[0] = Int32GetDatum(c[i].queue_id);
		for (k = 0; k < MQ_NCOUNTERS; k++)
			values[1 + k] = Int64GetDatum(c[i].n[k]);
		mq_stmt_exec(&mq_stmt_flush_counter, values, NULL, 0);
		/* what we wrote leaves shared memory when we commit */
		for (k = 0; k < MQ_NCOUNTERS; k++)
			mq_xact_count(c[i].queue_id, (MqCounterKind) k, -c[i].n[k]);
	}
	mq_counter_flushed = true;

	/* of the stale entries, keep those of other databases that exist */
	for (i = 0; i < nstale; i++)
		if (stale[i].dboid != MyDatabaseId &&
			SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(stale[i].dboid)))
			stale[i].dboid = InvalidOid;
	if (nstale > 0)
	{
		LWLockAcquire(mq_shared->counter_lock, LW_EXCLUSIVE);
		for (i = 0; i < nstale; i++)
			if (OidIsValid(stale[i].dboid))
				(void) hash_search(mq_counters, &stale[i], HASH_REMOVE, NULL);
		LWLockRelease(mq_shared->counter_lock);
	}
	pfree(c);
}

/*
 * mq_sql_count
 *		mq._count(queue_id, kind, n): move a counter at commit; kind is
 *		'sent', 'acked', 'dead' or 'purged'.
 */
Datum
mq_sql_count(PG_FUNCTION_ARGS)
{
	int32		queue_id = PG_GETARG_INT32(0);
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	int64		n = PG_GETARG_INT64(2);

	if (strcmp(kind, "sent") == 0)
		mq_xact_count(queue_id, MQ_SENT, n);
	else if (strcmp(kind, "acked") == 0)
		mq_xact_count(queue_id, MQ_ACKED, n);
	else if (strcmp(kind, "dead") == 0)
		mq_xact_count(queue_id, MQ_DEAD, n);
	else if (strcmp(kind, "purged") == 0)
		mq_xact_count(queue_id, MQ_PURGED, n);
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown counter \"%s\"", kind)));
	PG_RETURN_VOID();
}

/*
 * mq_sql_pending_counters
 *		mq._pending_counters(): counter moves of this database committed but
 *		not yet written to mq.queue_counter, plus the calling transaction's
 *		own.
 */
Datum
mq_sql_pending_counters(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Tuplestorestate *store = mq_srf_init(fcinfo, &desc);
	MqCounter  *c;
	int			n = 0;
	int			nown;
	int			i;
	int			j;
	Oid			epoch = mq_epoch();
	int			max = mq_max_counters;

	c = palloc(sizeof(MqCounter) * (max + mq_nmoves));
	if (mq_shared != NULL)
		n = mq_counter_take(MyDatabaseId, epoch, c, max, NULL, NULL);
	/* plus this transaction's own moves, merged per queue */
	nown = mq_counter_own(epoch, c + n, mq_nmoves);
	for (i = n; i < n + nown; i++)
	{
		for (j = 0; j < n; j++)
			if (c[j].queue_id == c[i].queue_id)
				break;
		if (j < n)
		{
			int			k;

			for (k = 0; k < MQ_NCOUNTERS; k++)
				c[j].n[k] += c[i].n[k];
			c[i].queue_id = -1;
		}
	}
	for (i = 0; i < n + nown; i++)
	{
		Datum		values[1 + MQ_NCOUNTERS];
		bool		nulls[1 + MQ_NCOUNTERS];
		int			k;

		if (i >= n && c[i].queue_id == -1)
			continue;
		memset(nulls, 0, sizeof(nulls));
		values[0] = Int32GetDatum(c[i].queue_id);
		for (k = 0; k < MQ_NCOUNTERS; k++)
			values[1 + k] = Int64GetDatum(c[i].n[k]);
		tuplestore_putvalues(store, desc, values, nulls);
	}
	return (Datum) 0;
}
