/*-------------------------------------------------------------------------
 *
 * twophase.c
 *	  Prepared transactions: what they owe the rest of the system when they
 *	  end, kept in the prepared transaction itself until then.
 *
 * A transaction notes in backend memory what it owes at commit (counter
 * moves, counter.c; wake-ups, a relay poke and a worker launch, xact.c;
 * settled debts, attempts.c) and at rollback (the deliveries a rollback
 * undoes, attempts.c).  PREPARE TRANSACTION ends the backend's part of the
 * transaction, so these notes would be lost.  Instead, just before the
 * transaction prepares, this file writes them as rows of
 * mq.prepared_effect, tagged with the transaction's GID, inside the
 * transaction: they survive a crash with it, and they become visible
 * exactly when it commits.
 *
 * COMMIT PREPARED (from any session, also after a restart) then deletes
 * the rows of its GID and makes what they say its own transaction's notes,
 * so they are paid when it commits, as fast as a plain commit pays them.
 * ROLLBACK PREPARED reads the rows of the GID before the rollback (with a
 * dirty snapshot: they are the prepared transaction's uncommitted rows)
 * and, once the rollback is done, makes its deliveries debts (attempts.c)
 * and wakes their queues.  Whoever deletes a committed row pays it; a row
 * whose COMMIT PREPARED failed after the commit (or crashed) is paid by the
 * worker's next pass (mq_twophase_sweep), which deletes any committed row
 * it finds: every committed row is paid exactly once.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* the table and its index on gid */
#define MQ_TWOPHASE_TABLE "prepared_effect"
#define MQ_TWOPHASE_INDEX "prepared_effect_gid_idx"
#define MQ_TWOPHASE_NATTS 6		/* gid, effect, epoch, object_id, item, amount */

/* the most committed rows one pass of the worker pays */
#define MQ_TWOPHASE_SWEEP_BATCH 10000

static ProcessUtility_hook_type mq_twophase_prev_utility_hook = NULL;

/* the GID of the PREPARE TRANSACTION running in this backend, if any */
static char *mq_prepare_gid = NULL;

/* $1 gid, $2.. the items */
static MqStmt mq_stmt_save = {
	"INSERT INTO mq.prepared_effect (gid, effect, epoch, object_id, item, amount)"
	" SELECT $1, e.effect, e.epoch, e.object_id, e.item, e.amount"
	"   FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3),"
	"                   pg_catalog.unnest($4), pg_catalog.unnest($5),"
	"                   pg_catalog.unnest($6))"
	"        AS e(effect, epoch, object_id, item, amount)",
	6, {TEXTOID, CHARARRAYOID, OIDARRAYOID, INT4ARRAYOID, INT8ARRAYOID,
	INT8ARRAYOID}
};

/* $1 gid: take the rows of a committed prepared transaction */
static MqStmt mq_stmt_take = {
	"DELETE FROM mq.prepared_effect WHERE gid OPERATOR(pg_catalog.=) $1"
	" RETURNING effect, epoch, object_id, item, amount",
	1, {TEXTOID}
};

/* $1 limit: take committed rows no one else is taking */
static MqStmt mq_stmt_sweep = {
	"DELETE FROM mq.prepared_effect"
	" WHERE ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
	"   SELECT ctid FROM mq.prepared_effect LIMIT $1 FOR UPDATE SKIP LOCKED))"
	" RETURNING effect, epoch, object_id, item, amount",
	1, {INT4OID}
};

/*
 * mq_effect_add
 *		Append an item to l (in the current memory context).
 */
MqEffect *
mq_effect_add(MqEffectList *l, char kind, Oid epoch, int32 object_id,
			  int64 item, int64 amount)
{
	MqEffect   *e;

	if (l->n == l->max)
	{
		l->max = l->max ? l->max * 2 : 16;
		l->items = l->items ? repalloc(l->items, l->max * sizeof(MqEffect))
			: palloc(l->max * sizeof(MqEffect));
	}
	e = &l->items[l->n++];
	e->kind = kind;
	e->epoch = epoch;
	e->object_id = object_id;
	e->item = item;
	e->amount = amount;
	return e;
}

/*
 * mq_twophase_relid
 *		mq.prepared_effect, or InvalidOid where this database has no mq or
 *		an mq older than 0.2.0 (which did not keep prepared effects).
 */
static Oid
mq_twophase_relid(const char *relname)
{
	Oid			nsp = get_namespace_oid("mq", true);

	if (!OidIsValid(nsp))
		return InvalidOid;
	return get_relname_relid(relname, nsp);
}

/*
 * mq_twophase_save
 *		Before the transaction prepares: write what it owes into
 *		mq.prepared_effect, as the extension's owner (the table is mq's, the
 *		role that prepares may not write it).
 */
static void
mq_twophase_save(void)
{
	MqEffectList l = {NULL, 0, 0};
	Datum	   *kinds;
	Datum	   *epochs;
	Datum	   *objects;
	Datum	   *items;
	Datum	   *amounts;
	Datum		values[MQ_TWOPHASE_NATTS];
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	int			i;

	/* (no mq here, or it was dropped in this transaction: nothing to owe) */
	if (!OidIsValid(mq_twophase_relid(MQ_TWOPHASE_TABLE)) ||
		!OidIsValid(owner = mq_acl_extension_owner()))
		return;
	mq_xact_effects(&l);
	mq_counter_effects(&l);
	mq_attempts_effects(&l);
	if (l.n == 0)
		return;
	if (mq_prepare_gid == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("mq cannot keep the bookkeeping of this prepared transaction"),
				 errdetail("The transaction was prepared other than by a PREPARE TRANSACTION statement.")));

	kinds = palloc(sizeof(Datum) * l.n);
	epochs = palloc(sizeof(Datum) * l.n);
	objects = palloc(sizeof(Datum) * l.n);
	items = palloc(sizeof(Datum) * l.n);
	amounts = palloc(sizeof(Datum) * l.n);
	for (i = 0; i < l.n; i++)
	{
		kinds[i] = CharGetDatum(l.items[i].kind);
		epochs[i] = ObjectIdGetDatum(l.items[i].epoch);
		objects[i] = Int32GetDatum(l.items[i].object_id);
		items[i] = Int64GetDatum(l.items[i].item);
		amounts[i] = Int64GetDatum(l.items[i].amount);
	}
	values[0] = CStringGetTextDatum(mq_prepare_gid);
	values[1] = PointerGetDatum(construct_array(kinds, l.n, CHAROID, 1, true,
												TYPALIGN_CHAR));
	values[2] = PointerGetDatum(construct_array(epochs, l.n, OIDOID, 4, true,
												TYPALIGN_INT));
	values[3] = PointerGetDatum(mq_int4_array(objects, l.n));
	values[4] = PointerGetDatum(mq_int8_array(items, l.n));
	values[5] = PointerGetDatum(mq_int8_array(amounts, l.n));

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PushActiveSnapshot(GetTransactionSnapshot());
	PG_TRY();
	{
		SPI_connect();
		mq_stmt_exec(&mq_stmt_save, values, NULL, 0);
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	PopActiveSnapshot();
}

/*
 * mq_twophase_pay
 *		Make the rows in SPI_tuptable (effect, epoch, object_id, item,
 *		amount of committed prepared transactions, just deleted by the
 *		current transaction) the current transaction's own notes: they are
 *		paid when it commits, and not at all if it rolls back (then the rows
 *		are still there).  Items of another installation of mq are void.
 *		Returns how many rows there were.
 */
static uint64
mq_twophase_pay(void)
{
	TupleDesc	desc = SPI_tuptable->tupdesc;
	Oid			epoch = mq_epoch();
	uint64		i;

	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	t = SPI_tuptable->vals[i];
		bool		isnull;		/* (every column is NOT NULL) */
		char		kind = DatumGetChar(SPI_getbinval(t, desc, 1, &isnull));
		Oid			e_epoch = DatumGetObjectId(SPI_getbinval(t, desc, 2, &isnull));
		int32		object_id = DatumGetInt32(SPI_getbinval(t, desc, 3, &isnull));
		int64		item = DatumGetInt64(SPI_getbinval(t, desc, 4, &isnull));
		int64		amount = DatumGetInt64(SPI_getbinval(t, desc, 5, &isnull));

		if (e_epoch != epoch)
			continue;
		switch (kind)
		{
			case MQ_EFFECT_COUNT:
				if (item >= 0 && item < MQ_NCOUNTERS)
					mq_xact_count(object_id, (MqCounterKind) item, amount);
				break;
			case MQ_EFFECT_WAKE_QUEUE:
				mq_xact_wake(object_id);
				break;
			case MQ_EFFECT_WAKE_TOPIC:
				mq_xact_wake_topic(object_id);
				break;
			case MQ_EFFECT_RELAY:
				mq_xact_relay_on_commit();
				break;
			case MQ_EFFECT_LAUNCH:
				mq_xact_launch_on_commit();
				break;
			case MQ_EFFECT_SETTLED:
				mq_attempts_settle_on_commit(e_epoch, item, (int32) amount);
				break;
			case MQ_EFFECT_DELIVERED:
				/* counted by the attempt the committed poll raised */
				break;
		}
	}
	return SPI_processed;
}

/*
 * mq_twophase_committed
 *		COMMIT PREPARED gid has committed: take its rows and pay them with
 *		the current transaction.  An error here must not make the command
 *		look failed (the prepared transaction did commit): it is caught in
 *		a subtransaction, reported as a WARNING, and the worker's next pass
 *		pays the rows instead.
 */
static void
mq_twophase_committed(const char *gid)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner_res = CurrentResourceOwner;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;

	if (!OidIsValid(mq_twophase_relid(MQ_TWOPHASE_TABLE)) ||
		!OidIsValid(owner = mq_acl_extension_owner()))
		return;
	/*
	 * The prepared transaction's commit record is flushed already (COMMIT
	 * PREPARED always is); this transaction's, which deletes the rows, need
	 * not be.  If a crash loses it, it loses with it everything paid into
	 * shared memory (which the crash empties) and every later record, such
	 * as a pass that wrote those counters out: the rows are back and the
	 * pass pays them once.  So one WAL flush, not two.
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		Datum		values[1];

		SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
		values[0] = CStringGetTextDatum(gid);
		SPI_connect();
		mq_stmt_exec_latest_write(&mq_stmt_take, values, NULL, 0);
		(void) mq_twophase_pay();
		SPI_finish();
		SetUserIdAndSecContext(save_userid, save_sec_context);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner_res;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner_res;
		SetUserIdAndSecContext(save_userid, save_sec_context);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("mq could not count what prepared transaction \"%s\" did: %s",
						gid, edata->message),
				 errdetail("The transaction is committed; mq's worker counts it on its next pass.")));
		FreeErrorData(edata);
		mq_worker_wake(MyDatabaseId);
	}
	PG_END_TRY();
}

/*
 * mq_twophase_read_deliveries
 *		Before ROLLBACK PREPARED gid: the deliveries the prepared
 *		transaction holds, read from its (uncommitted) rows with a dirty
 *		snapshot.  Rows of gid that are already committed (an earlier
 *		transaction of the same GID, not yet paid) are left to the sweep.
 */
static MqEffectList
mq_twophase_read_deliveries(const char *gid)
{
	MqEffectList l = {NULL, 0, 0};
	Oid			relid = mq_twophase_relid(MQ_TWOPHASE_TABLE);
	Oid			indexid = mq_twophase_relid(MQ_TWOPHASE_INDEX);
	Relation	rel;
	SnapshotData dirty;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	if (!OidIsValid(relid) || !OidIsValid(indexid))
		return l;
	rel = table_open(relid, AccessShareLock);
	InitDirtySnapshot(dirty);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_TEXTEQ,
				CStringGetTextDatum(gid));
	scan = systable_beginscan(rel, indexid, true, &dirty, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Datum		v[MQ_TWOPHASE_NATTS];
		bool		n[MQ_TWOPHASE_NATTS];	/* (every column is NOT NULL) */

		/* dirty.xmin is set only for a row whose inserter is in progress */
		if (!TransactionIdIsValid(dirty.xmin))
			continue;
		heap_deform_tuple(tup, RelationGetDescr(rel), v, n);
		if (DatumGetChar(v[1]) != MQ_EFFECT_DELIVERED)
			continue;
		(void) mq_effect_add(&l, MQ_EFFECT_DELIVERED, DatumGetObjectId(v[2]),
							 DatumGetInt32(v[3]), DatumGetInt64(v[4]), 1);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return l;
}

/*
 * mq_twophase_utility_hook
 *		Note the GID of PREPARE TRANSACTION; pay what a prepared transaction
 *		owes once COMMIT PREPARED or ROLLBACK PREPARED has done its work.
 */
static void
mq_twophase_utility_hook(PlannedStmt *pstmt, const char *queryString,
						 bool readOnlyTree, ProcessUtilityContext context,
						 ParamListInfo params, QueryEnvironment *queryEnv,
						 DestReceiver *dest, QueryCompletion *qc)
{
	TransactionStmt *stmt = NULL;
	MqEffectList undone = {NULL, 0, 0};

	if (IsA(pstmt->utilityStmt, TransactionStmt) && mq_shared != NULL)
		stmt = (TransactionStmt *) pstmt->utilityStmt;
	if (stmt != NULL && stmt->kind == TRANS_STMT_PREPARE)
	{
		if (mq_prepare_gid != NULL)
			pfree(mq_prepare_gid);
		mq_prepare_gid = MemoryContextStrdup(TopMemoryContext, stmt->gid);
	}
	if (stmt != NULL && stmt->kind == TRANS_STMT_ROLLBACK_PREPARED)
		undone = mq_twophase_read_deliveries(stmt->gid);

	if (mq_twophase_prev_utility_hook)
		mq_twophase_prev_utility_hook(pstmt, queryString, readOnlyTree,
									  context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	if (stmt != NULL && stmt->kind == TRANS_STMT_COMMIT_PREPARED)
		mq_twophase_committed(stmt->gid);
	if (stmt != NULL && stmt->kind == TRANS_STMT_ROLLBACK_PREPARED &&
		undone.n > 0)
		mq_attempts_owe_effects(undone.items, undone.n);
}

/*
 * mq_twophase_xact_callback
 *		Save the transaction's notes just before it prepares; forget the GID
 *		when it ends.  Registered before every other callback of mq, so it
 *		runs after them (callbacks run newest first): the publish buffer has
 *		been written by then.
 */
static void
mq_twophase_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (mq_shared != NULL)
				mq_twophase_save();
			break;
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (mq_prepare_gid != NULL)
				pfree(mq_prepare_gid);
			mq_prepare_gid = NULL;
			break;
		default:
			break;
	}
}

/*
 * mq_twophase_sweep
 *		The pass: pay the rows of committed prepared transactions that no
 *		COMMIT PREPARED paid (it failed or crashed after the commit).  Inside
 *		SPI, as the extension's owner.  Returns the rows paid.
 */
uint64
mq_twophase_sweep(void)
{
	Datum		values[1];

	if (!OidIsValid(mq_twophase_relid(MQ_TWOPHASE_TABLE)))
		return 0;
	values[0] = Int32GetDatum(MQ_TWOPHASE_SWEEP_BATCH);
	mq_stmt_exec(&mq_stmt_sweep, values, NULL, 0);
	return mq_twophase_pay();
}

/*
 * mq_twophase_init
 *		Register the callback and the utility hook; from _PG_init, before
 *		any other callback of mq.
 */
void
mq_twophase_init(void)
{
	RegisterXactCallback(mq_twophase_xact_callback, NULL);
	if (process_shared_preload_libraries_in_progress)
	{
		mq_twophase_prev_utility_hook = ProcessUtility_hook;
		ProcessUtility_hook = mq_twophase_utility_hook;
	}
}
