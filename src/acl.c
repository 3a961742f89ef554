/*-------------------------------------------------------------------------
 *
 * acl.c
 *	  mq's privileges: the grant catalog cache, the checks every entry point
 *	  makes, the role the worker runs as, and the guard that keeps user code
 *	  off mq's tables.
 *
 * Grants live in mq.acl, one row per (object, grantee) with a bit mask of
 * privileges (MQ_PRIV_*); object '*' stands for every object of the
 * database.  Every entry point (C or SQL) is SECURITY DEFINER, owned by the
 * extension's owner, and checks the privilege it needs against the calling
 * role before it touches anything.  PostgreSQL does not tell a SECURITY
 * DEFINER function who called it, so the calling role is the session's
 * current role (GetOuterUserId: the login role or the one chosen with SET
 * ROLE); in a security-restricted operation (an index expression run by
 * VACUUM, REFRESH MATERIALIZED VIEW, ...) that is not who runs the code,
 * and mq refuses.  Superusers and members of the extension owner's role
 * hold every privilege.
 *
 * Each backend loads mq.acl once and keeps, per role it has checked, the
 * privileges that role holds through its grants, PUBLIC's and those of the
 * roles it inherits from.  The cache is dropped on a relcache invalidation
 * of mq.acl (mq.grant, mq.revoke and the ownership triggers send one,
 * delivered at commit, undone locally at abort: the same protocol as the
 * queue cache in catalog.c) and on any change of roles or memberships.  A
 * check on a warm cache is two hash look-ups.
 *
 * A database still at 0.1.0 has no mq.acl: there, the checks allow
 * everything and table privileges govern, as they did in 0.1.0.
 *
 *-------------------------------------------------------------------------
 */
#include "mq.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(mq_acl_check_sql);
PG_FUNCTION_INFO_V1(mq_acl_has_privilege);
PG_FUNCTION_INFO_V1(mq_acl_invalidate_sql);
PG_FUNCTION_INFO_V1(mq_acl_visible);
PG_FUNCTION_INFO_V1(mq_acl_creator);
PG_FUNCTION_INFO_V1(mq_acl_ddl_guard);

/* One row of mq.acl */
typedef struct MqAclRow
{
	char		kind;			/* 'q', 't', 'x' or '*' */
	int32		id;				/* 0 for '*' */
	Oid			grantee;		/* InvalidOid: PUBLIC */
	uint32		privs;
} MqAclRow;

/* Hash key of an object's privileges for one role; memset before use */
typedef struct MqAclKey
{
	Oid			role;
	int32		id;
	char		kind;
} MqAclKey;

typedef struct MqAclObject
{
	MqAclKey	key;
	uint32		privs;
} MqAclObject;

/* What one role holds, in summary */
typedef struct MqAclRole
{
	Oid			role;			/* hash key */
	bool		all;			/* superuser, or has the owner's privileges */
	uint32		star;			/* privileges on '*' */
} MqAclRole;

/* Everything below lives in mq_acl_cxt; NULL when not loaded */
static MemoryContext mq_acl_cxt = NULL;
static MqAclRow *mq_acl_rows = NULL;
static int	mq_acl_nrows = 0;
static HTAB *mq_acl_roles = NULL;
static HTAB *mq_acl_objects = NULL;
static MqAclRole *mq_acl_last = NULL;	/* the role checked last */

/* Valid while loaded */
static bool mq_acl_loaded = false;
static bool mq_acl_present = false;		/* mq.acl exists (not at 0.1.0) */
static Oid	mq_acl_owner = InvalidOid;	/* the extension's owner */
static Oid	mq_acl_relid = InvalidOid;	/* mq.acl */

/* bumped by every invalidation, so a load can tell it was overtaken */
static uint64 mq_acl_generation = 1;
static bool mq_acl_callbacks = false;

static MqStmt mq_stmt_acl_load = {
	"SELECT object_kind, object_id, grantee::pg_catalog.oid, privileges"
	"  FROM mq.acl",
	0, {InvalidOid}
};

/* The privileges by name, in bit order */
static const struct
{
	const char *name;
	uint32		bit;
}			mq_acl_privnames[] =
{
	{"send", MQ_PRIV_SEND},
	{"receive", MQ_PRIV_RECEIVE},
	{"publish", MQ_PRIV_PUBLISH},
	{"consume", MQ_PRIV_CONSUME},
	{"manage", MQ_PRIV_MANAGE},
	{"create", MQ_PRIV_CREATE},
};

/*
 * mq_acl_flush
 *		Drop the whole cache.
 */
static void
mq_acl_flush(void)
{
	if (mq_acl_cxt != NULL)
		MemoryContextDelete(mq_acl_cxt);
	mq_acl_cxt = NULL;
	mq_acl_rows = NULL;
	mq_acl_nrows = 0;
	mq_acl_roles = NULL;
	mq_acl_objects = NULL;
	mq_acl_last = NULL;
	mq_acl_loaded = false;
	mq_acl_generation++;
}

/*
 * mq_acl_relcache_cb
 *		Relcache callback: drop the cache when mq.acl (or everything) is
 *		invalidated; the extension may have been dropped and created again.
 */
static void
mq_acl_relcache_cb(Datum arg, Oid relid)
{
	if (relid != InvalidOid && relid != mq_acl_relid)
		return;
	mq_acl_flush();
	mq_acl_relid = InvalidOid;
}

/*
 * mq_acl_syscache_cb
 *		Syscache callback for roles and memberships: who inherits what, and
 *		who is a superuser, may have changed.
 */
static void
mq_acl_syscache_cb(Datum arg, int cacheid, uint32 hashvalue)
{
	mq_acl_flush();
}

/*
 * mq_acl_name
 *		The name of privilege bit, for messages.
 */
static const char *
mq_acl_name(uint32 bit)
{
	for (int i = 0; i < lengthof(mq_acl_privnames); i++)
		if (mq_acl_privnames[i].bit == bit)
			return mq_acl_privnames[i].name;
	return "?";
}

/*
 * mq_acl_kind_name
 *		"queue", "topic", "exchange" for a kind letter.
 */
static const char *
mq_acl_kind_name(char kind)
{
	switch (kind)
	{
		case MQ_KIND_QUEUE:
			return "queue";
		case MQ_KIND_TOPIC:
			return "topic";
		case MQ_KIND_EXCHANGE:
			return "exchange";
		default:
			return "object";
	}
}

/*
 * mq_acl_parse_privilege
 *		The bit of a privilege name; an error for an unknown name.
 */
static uint32
mq_acl_parse_privilege(const char *name)
{
	for (int i = 0; i < lengthof(mq_acl_privnames); i++)
		if (pg_strcasecmp(mq_acl_privnames[i].name, name) == 0)
			return mq_acl_privnames[i].bit;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown mq privilege \"%s\"", name),
			 errhint("The privileges are send, receive, publish, consume, manage and create.")));
	return 0;					/* keep compiler quiet */
}

/*
 * mq_acl_lookup_owner
 *		The owner of extension mq, or InvalidOid if it is not installed.
 */
static Oid
mq_acl_lookup_owner(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			owner = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("mq"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return owner;
}

/*
 * mq_acl_read
 *		The rows of mq.acl, read as owner, palloc'd in the caller's context.
 */
static MqAclRow *
mq_acl_read(Oid owner, int *nrows_out)
{
	Oid			save_userid;
	int			save_sec_context;
	MqAclRow   *volatile rows = NULL;
	volatile int nrows = 0;

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		SPI_connect();
		mq_stmt_exec(&mq_stmt_acl_load, NULL, NULL, 0);
		nrows = (int) SPI_processed;
		rows = SPI_palloc(sizeof(MqAclRow) * Max(nrows, 1));
		for (int i = 0; i < nrows; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;

			rows[i].kind = DatumGetChar(SPI_getbinval(tup, desc, 1, &isnull));
			rows[i].id = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
			rows[i].grantee = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));
			rows[i].privs = (uint32) DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	*nrows_out = nrows;
	return rows;
}

/*
 * mq_acl_load
 *		Make sure the cache holds mq.acl and the extension's owner.
 *
 * The rows are read as the extension's owner (a trigger of mq.outbox runs
 * as whoever inserts).  Reading processes invalidations; if one arrives
 * meanwhile, what was read may be stale and the load starts over.
 */
static void
mq_acl_load(void)
{
	/*
	 * At 0.1.0 (no mq.acl) nothing is cached: ALTER EXTENSION mq UPDATE
	 * creates the table without an invalidation this backend would see.
	 */
	if (mq_acl_loaded && !mq_acl_present)
		mq_acl_flush();
	while (!mq_acl_loaded)
	{
		uint64		generation = mq_acl_generation;
		Oid			owner;
		Oid			relid = InvalidOid;
		Oid			nsp;
		MqAclRow   *rows = NULL;
		int			nrows = 0;
		MemoryContext cxt;

		if (!mq_acl_callbacks)
		{
			CacheRegisterRelcacheCallback(mq_acl_relcache_cb, (Datum) 0);
			CacheRegisterSyscacheCallback(AUTHOID, mq_acl_syscache_cb, (Datum) 0);
			CacheRegisterSyscacheCallback(AUTHMEMMEMROLE, mq_acl_syscache_cb, (Datum) 0);
			mq_acl_callbacks = true;
		}

		owner = mq_acl_lookup_owner();
		if (!OidIsValid(owner))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("extension \"mq\" is not installed in this database")));
		nsp = get_namespace_oid("mq", true);
		if (OidIsValid(nsp))
			relid = get_relname_relid("acl", nsp);

		if (OidIsValid(relid))
			rows = mq_acl_read(owner, &nrows);

		if (generation != mq_acl_generation)
		{
			if (rows != NULL)
				pfree(rows);
			continue;			/* overtaken by an invalidation: read again */
		}

		cxt = AllocSetContextCreate(TopMemoryContext, "mq acl cache",
									ALLOCSET_SMALL_SIZES);
		mq_acl_rows = MemoryContextAlloc(cxt, sizeof(MqAclRow) * Max(nrows, 1));
		if (nrows > 0)
			memcpy(mq_acl_rows, rows, sizeof(MqAclRow) * nrows);
		mq_acl_nrows = nrows;
		if (rows != NULL)
			pfree(rows);

		mq_acl_roles = mq_hash_create("mq acl roles", sizeof(Oid),
									  sizeof(MqAclRole), 16, cxt);
		mq_acl_objects = mq_hash_create("mq acl objects", sizeof(MqAclKey),
										sizeof(MqAclObject), 64, cxt);
		mq_acl_cxt = cxt;
		mq_acl_owner = owner;
		mq_acl_relid = relid;
		mq_acl_present = OidIsValid(relid);
		mq_acl_loaded = true;
	}
}

/*
 * mq_acl_role
 *		What role holds, from the cache; computed on first use.
 *
 * Membership tests may read catalogs and so process invalidations; the
 * role's grants are therefore worked out first and entered only if the
 * cache is still the one they were computed from.
 */
static MqAclRole *
mq_acl_role(Oid role)
{
	for (;;)
	{
		uint64		generation;
		bool		all;
		uint32		star = 0;
		bool	   *held;
		MqAclRole  *entry;
		bool		found;

		if (mq_acl_loaded && mq_acl_present && mq_acl_last != NULL &&
			mq_acl_last->role == role)
			return mq_acl_last;
		mq_acl_load();
		entry = hash_search(mq_acl_roles, &role, HASH_FIND, NULL);
		if (entry != NULL)
		{
			mq_acl_last = entry;
			return entry;
		}

		generation = mq_acl_generation;
		all = !mq_acl_present || superuser_arg(role) ||
			has_privs_of_role(role, mq_acl_owner);
		held = palloc0(sizeof(bool) * Max(mq_acl_nrows, 1));
		if (!all)
			for (int i = 0; i < mq_acl_nrows; i++)
				held[i] = !OidIsValid(mq_acl_rows[i].grantee) ||
					has_privs_of_role(role, mq_acl_rows[i].grantee);
		if (generation != mq_acl_generation)
		{
			pfree(held);
			continue;
		}

		for (int i = 0; i < mq_acl_nrows && !all; i++)
		{
			MqAclKey	key;
			MqAclObject *obj;

			if (!held[i])
				continue;
			if (mq_acl_rows[i].kind == MQ_KIND_ALL)
			{
				star |= mq_acl_rows[i].privs;
				continue;
			}
			memset(&key, 0, sizeof(key));
			key.role = role;
			key.kind = mq_acl_rows[i].kind;
			key.id = mq_acl_rows[i].id;
			obj = hash_search(mq_acl_objects, &key, HASH_ENTER, &found);
			if (!found)
				obj->privs = 0;
			obj->privs |= mq_acl_rows[i].privs;
		}
		pfree(held);
		entry = hash_search(mq_acl_roles, &role, HASH_ENTER, &found);
		entry->all = all;
		entry->star = star;
		mq_acl_last = entry;
		return entry;
	}
}

/*
 * mq_acl_caller
 *		The role whose privileges a check tests.
 *
 * Inside mq's entry points (SECURITY DEFINER, owned by the extension's
 * owner) that is the session's current role.  Elsewhere (a function that
 * is not SECURITY DEFINER, a view's filter) it is the current user.
 */
static Oid
mq_acl_caller(void)
{
	Oid			uid = GetUserId();
	Oid			outer;

	mq_acl_load();
	if (uid != mq_acl_owner)
		return uid;
	outer = GetOuterUserId();
	if (outer != uid && InSecurityRestrictedOperation())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("mq cannot be used within a security-restricted operation"),
				 errdetail("The role running the operation is not the session's role, whose mq privileges would apply.")));
	return outer;
}

/*
 * mq_acl_kind_privs
 *		The privileges that apply to objects of a kind.
 */
static uint32
mq_acl_kind_privs(char kind)
{
	switch (kind)
	{
		case MQ_KIND_QUEUE:
			return MQ_PRIV_SEND | MQ_PRIV_RECEIVE | MQ_PRIV_MANAGE;
		case MQ_KIND_TOPIC:
			return MQ_PRIV_PUBLISH | MQ_PRIV_CONSUME | MQ_PRIV_MANAGE;
		case MQ_KIND_EXCHANGE:
			return MQ_PRIV_PUBLISH | MQ_PRIV_MANAGE;
		default:
			return MQ_PRIV_ALL;
	}
}

/*
 * mq_acl_privs
 *		The privileges the caller holds on an object (kind, id); kind '*'
 *		asks for the privileges on '*' alone.
 */
static uint32
mq_acl_privs(Oid role, char kind, int32 id)
{
	MqAclRole  *r = mq_acl_role(role);
	MqAclKey	key;
	MqAclObject *obj;

	if (r->all)
		return MQ_PRIV_ALL;
	if (kind == MQ_KIND_ALL)
		return r->star;
	memset(&key, 0, sizeof(key));
	key.role = role;
	key.kind = kind;
	key.id = id;
	obj = hash_search(mq_acl_objects, &key, HASH_FIND, NULL);
	return (r->star & mq_acl_kind_privs(kind)) | (obj != NULL ? obj->privs : 0);
}

/*
 * mq_acl_priv_for
 *		The privilege a use needs on an object of this kind: what writes
 *		into a queue is send and into a topic or exchange publish; what
 *		reads a queue is receive and a topic consume.
 */
static uint32
mq_acl_priv_for(char kind, uint32 priv)
{
	if (kind == MQ_KIND_QUEUE)
	{
		if (priv == MQ_PRIV_PUBLISH)
			return MQ_PRIV_SEND;
		if (priv == MQ_PRIV_CONSUME)
			return MQ_PRIV_RECEIVE;
	}
	else if (kind == MQ_KIND_TOPIC || kind == MQ_KIND_EXCHANGE)
	{
		if (priv == MQ_PRIV_SEND)
			return MQ_PRIV_PUBLISH;
		if (priv == MQ_PRIV_RECEIVE)
			return MQ_PRIV_CONSUME;
	}
	return priv;
}

/*
 * mq_acl_refuse
 *		Raise the 42501 of a missing privilege.
 */
static void
mq_acl_refuse(Oid role, char kind, const char *name, uint32 priv)
{
	const char *rolname = OidIsValid(role) ?
	GetUserNameFromId(role, true) : NULL;

	if (kind == MQ_KIND_ALL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied: %s privilege on '*' required",
						mq_acl_name(priv)),
				 errdetail("Role \"%s\" does not hold it.",
						   rolname ? rolname : "?"),
				 errhint("A role holding manage on '*' grants it with mq.grant('*', role_name, '{%s}').",
						 mq_acl_name(priv))));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied for %s \"%s\": %s privilege required",
					mq_acl_kind_name(kind), name, mq_acl_name(priv)),
			 errdetail("Role \"%s\" does not hold %s on it, nor on '*'.",
					   rolname ? rolname : "?", mq_acl_name(priv)),
			 errhint("A role holding manage on it grants it with mq.grant('%s', role_name, '{%s}').",
					 name, mq_acl_name(priv))));
}

/*
 * mq_acl_check
 *		Refuse with 42501 unless the caller holds priv (one MQ_PRIV_* bit)
 *		on the object (kind, id) called name.  kind MQ_KIND_ALL asks for
 *		the privilege on '*' itself (create, or an operation on every
 *		object).
 */
void
mq_acl_check(char kind, int32 id, const char *name, uint32 priv)
{
	Oid			role = mq_acl_caller();

	priv = mq_acl_priv_for(kind, priv);
	if ((mq_acl_privs(role, kind, id) & priv) != priv)
		mq_acl_refuse(role, kind, name, priv);
}

/*
 * mq_acl_dest_lookup
 *		mq_dest_lookup as the extension's owner: the view filters call it as
 *		the querying role, which may read none of mq's catalog.
 */
static char
mq_acl_dest_lookup(const char *name, int len, int32 *id)
{
	Oid			save_userid;
	int			save_sec_context;
	volatile char kind = 0;

	mq_acl_load();
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	if (save_userid == mq_acl_owner)
		return mq_dest_lookup(name, len, id);
	SetUserIdAndSecContext(mq_acl_owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		kind = mq_dest_lookup(name, len, id);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	return kind;
}

/*
 * mq_acl_queue_get
 *		mq_queue_get, then the check that the caller holds priv on the
 *		queue: what the queue entry points call instead of mq_queue_get.
 */
const MqQueue *
mq_acl_queue_get(text *queue_name, uint32 priv)
{
	const MqQueue *q = mq_queue_get(queue_name);

	mq_acl_check(MQ_KIND_QUEUE, q->queue_id, q->name, priv);
	return q;
}

/*
 * mq_acl_check_text
 *		mq_acl_check for an object whose name is a text (formatted only for
 *		a refusal).
 */
void
mq_acl_check_text(char kind, int32 id, text *name, uint32 priv)
{
	Oid			role = mq_acl_caller();

	priv = mq_acl_priv_for(kind, priv);
	if ((mq_acl_privs(role, kind, id) & priv) != priv)
		mq_acl_refuse(role, kind, text_to_cstring(name), priv);
}

/*
 * mq_acl_check_publish
 *		Refuse unless the caller may publish to dest (send, for a queue); a
 *		name that is no destination is left to the caller to report.
 */
void
mq_acl_check_publish(text *dest)
{
	int32		id;
	char		kind = mq_dest_lookup(VARDATA_ANY(dest), VARSIZE_ANY_EXHDR(dest), &id);

	if (kind != 0)
		mq_acl_check_text(kind, id, dest, MQ_PRIV_PUBLISH);
}

/*
 * mq_acl_check_name
 *		mq_acl_check for an object known by name: a queue, topic or
 *		exchange, or '*'.  An unknown name needs the privilege on '*' (the
 *		caller then reports it as unknown): a concurrent creation must not
 *		let a role act on an object it holds nothing on.
 */
void
mq_acl_check_name(const char *name, int len, uint32 priv)
{
	char		buf[NAMEDATALEN];
	int32		id = 0;
	char		kind = MQ_KIND_ALL;
	Oid			role;

	len = Min(len, MQ_MAX_NAME_LEN);
	memcpy(buf, name, len);
	buf[len] = '\0';
	if (strcmp(buf, "*") == 0)
	{
		mq_acl_check(MQ_KIND_ALL, 0, buf, priv);
		return;
	}
	kind = mq_acl_dest_lookup(buf, len, &id);
	if (kind != 0)
	{
		mq_acl_check(kind, id, buf, priv);
		return;
	}
	role = mq_acl_caller();
	if ((mq_acl_privs(role, MQ_KIND_ALL, 0) & priv) != priv)
		mq_acl_refuse(role, MQ_KIND_UNKNOWN, buf, priv);
}

/*
 * mq_acl_check_arg
 *		mq_acl_check_name for argument argno of an entry point, the name of
 *		the object it uses (NULL: nothing to check; the entry point reports
 *		it).
 */
void
mq_acl_check_arg(FunctionCallInfo fcinfo, int argno, uint32 priv)
{
	text	   *name;

	if (PG_ARGISNULL(argno))
		return;
	name = PG_GETARG_TEXT_PP(argno);
	mq_acl_check_name(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name), priv);
}

/*
 * mq_acl_check_sql
 *		mq._acl_check(object_name text, privilege text): the check the SQL
 *		entry points make first.
 */
Datum
mq_acl_check_sql(PG_FUNCTION_ARGS)
{
	text	   *name;
	char	   *priv;

	if (PG_ARGISNULL(1))
		elog(ERROR, "mq._acl_check: privilege must not be NULL");
	priv = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (PG_ARGISNULL(0))
	{
		/* the entry point reports the NULL; refuse nothing it refuses */
		PG_RETURN_VOID();
	}
	name = PG_GETARG_TEXT_PP(0);
	mq_acl_check_name(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name),
					  mq_acl_parse_privilege(priv));
	PG_RETURN_VOID();
}

/*
 * mq_acl_has_privilege
 *		mq.has_privilege(object_name text, privilege text DEFAULT NULL):
 *		whether the current role holds privilege (NULL: any privilege) on
 *		the queue, topic or exchange called object_name, or on '*'.  False
 *		for an unknown object.  The views filter their rows with it.
 */
Datum
mq_acl_has_privilege(PG_FUNCTION_ARGS)
{
	text	   *name;
	const char *s;
	int			len;
	char		kind;
	int32		id = 0;
	uint32		have;
	Oid			role;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	name = PG_GETARG_TEXT_PP(0);
	s = VARDATA_ANY(name);
	len = VARSIZE_ANY_EXHDR(name);
	if (len == 1 && s[0] == '*')
		kind = MQ_KIND_ALL;
	else
	{
		kind = mq_acl_dest_lookup(s, len, &id);
		if (kind == 0)
			PG_RETURN_BOOL(false);
	}
	role = mq_acl_caller();
	have = mq_acl_privs(role, kind, id);
	if (PG_ARGISNULL(1))
		PG_RETURN_BOOL(have != 0);
	else
	{
		uint32		priv = mq_acl_parse_privilege(text_to_cstring(PG_GETARG_TEXT_PP(1)));

		priv = mq_acl_priv_for(kind, priv);
		PG_RETURN_BOOL((have & priv) == priv);
	}
}

/*
 * mq_acl_visible
 *		mq._acl_visible(object_name text): whether the calling role may see
 *		the object's row in a view: it holds a privilege on it, or has the
 *		privileges of pg_monitor.
 */
Datum
mq_acl_visible(PG_FUNCTION_ARGS)
{
	text	   *name;
	char		kind;
	int32		id = 0;
	Oid			role;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	name = PG_GETARG_TEXT_PP(0);
	role = mq_acl_caller();
	if (has_privs_of_role(role, ROLE_PG_MONITOR))
		PG_RETURN_BOOL(true);
	kind = mq_acl_dest_lookup(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name), &id);
	if (kind == 0)
		PG_RETURN_BOOL(mq_acl_privs(role, MQ_KIND_ALL, 0) != 0);
	PG_RETURN_BOOL(mq_acl_privs(role, kind, id) != 0);
}

/*
 * mq_acl_invalidate_sql
 *		mq._acl_invalidate(): every backend drops its grant cache at commit
 *		(this one at once).
 */
Datum
mq_acl_invalidate_sql(PG_FUNCTION_ARGS)
{
	Oid			nsp = get_namespace_oid("mq", false);
	Oid			relid = get_relname_relid("acl", nsp);

	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	PG_RETURN_VOID();
}

/*
 * mq_acl_creator
 *		mq._acl_creator() → regrole: the role that owns an object created
 *		now, or NULL if that role holds every privilege anyway (a superuser,
 *		the extension's owner).
 */
Datum
mq_acl_creator(PG_FUNCTION_ARGS)
{
	Oid			role = mq_acl_caller();

	if (mq_acl_role(role)->all)
		PG_RETURN_NULL();
	PG_RETURN_OID(role);
}

/*
 * mq_acl_extension_owner
 *		The owner of extension mq in this database, or InvalidOid.
 */
Oid
mq_acl_extension_owner(void)
{
	return mq_acl_lookup_owner();
}

/*
 * mq_acl_become_owner
 *		Make the rest of the current transaction run as the extension's
 *		owner (the worker's passes).  Returns false if the extension is not
 *		installed.  An abort restores the previous role.
 */
bool
mq_acl_become_owner(void)
{
	Oid			owner = mq_acl_lookup_owner();
	Oid			save_userid;
	int			save_sec_context;

	if (!OidIsValid(owner))
		return false;
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	return true;
}

/*
 * The guard.  mq's tables must never run code that a role put there: a
 * trigger or a rule on them would run with the rights of whoever writes
 * (the worker, another tenant), a policy likewise, a foreign key into them
 * makes their deletes run the referencing table's actions, and a grant on
 * them bypasses mq's own privileges.  The event trigger mq_guard runs this
 * at the end of each such command and refuses it (a foreign key or default
 * privileges only when this command made them: one left from before must
 * not block unrelated DDL; grants on mq's tables are checked whole, and
 * the upgrade from 0.1.0 revokes the old ones); the extension's own
 * scripts are exempt, and there it makes sure every internal function it
 * creates is not executable by PUBLIC.
 */
static const char *mq_guard_sql =
"SELECT c.command_tag, c.object_identity FROM pg_catalog.pg_event_trigger_ddl_commands() c"
" WHERE (c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass"
"        AND EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class r"
"                      ON r.oid OPERATOR(pg_catalog.=) t.tgrelid"
"                     WHERE t.oid OPERATOR(pg_catalog.=) c.objid"
"                       AND r.relnamespace OPERATOR(pg_catalog.=) $1))"
"    OR (c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
"        AND EXISTS (SELECT 1 FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_class r"
"                      ON r.oid OPERATOR(pg_catalog.=) w.ev_class"
"                     WHERE w.oid OPERATOR(pg_catalog.=) c.objid"
"                       AND r.relnamespace OPERATOR(pg_catalog.=) $1))"
"    OR (c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass"
"        AND EXISTS (SELECT 1 FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class r"
"                      ON r.oid OPERATOR(pg_catalog.=) p.polrelid"
"                     WHERE p.oid OPERATOR(pg_catalog.=) c.objid"
"                       AND r.relnamespace OPERATOR(pg_catalog.=) $1))"
" UNION ALL "
"SELECT 'FOREIGN KEY', pg_catalog.format('%s on %s', f.conname, f.conrelid::pg_catalog.regclass)"
"  FROM pg_catalog.pg_constraint f JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) f.confrelid"
"  JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) f.conrelid"
" WHERE f.contype OPERATOR(pg_catalog.=) 'f' AND r.relnamespace OPERATOR(pg_catalog.=) $1"
"   AND s.relnamespace OPERATOR(pg_catalog.<>) $1"
"   AND f.conrelid OPERATOR(pg_catalog.=) ANY (SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c"
"        WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass)"
" UNION ALL "
"SELECT 'GRANT', pg_catalog.format('%s to %s', r.oid::pg_catalog.regclass,"
"       CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END)"
"  FROM pg_catalog.pg_class r CROSS JOIN LATERAL pg_catalog.aclexplode(r.relacl) a"
" WHERE r.relnamespace OPERATOR(pg_catalog.=) $1 AND a.grantee OPERATOR(pg_catalog.<>) r.relowner"
"   AND r.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,S,m,f,v}'::pg_catalog.\"char\"[])"
"   AND (r.relkind OPERATOR(pg_catalog.<>) 'v' OR a.privilege_type OPERATOR(pg_catalog.<>) 'SELECT')"
"   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_init_privs i"
"                     CROSS JOIN LATERAL pg_catalog.aclexplode(i.initprivs) b"
"                    WHERE i.objoid OPERATOR(pg_catalog.=) r.oid AND i.objsubid OPERATOR(pg_catalog.=) 0"
"                      AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
"                      AND b.grantee OPERATOR(pg_catalog.=) a.grantee"
"                      AND b.privilege_type OPERATOR(pg_catalog.=) a.privilege_type)"
" UNION ALL "
"SELECT 'GRANT', pg_catalog.format('%s (%s) to %s', r.oid::pg_catalog.regclass, t.attname,"
"       CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::pg_catalog.text END)"
"  FROM pg_catalog.pg_class r JOIN pg_catalog.pg_attribute t ON t.attrelid OPERATOR(pg_catalog.=) r.oid"
"  CROSS JOIN LATERAL pg_catalog.aclexplode(t.attacl) a"
" WHERE r.relnamespace OPERATOR(pg_catalog.=) $1 AND a.grantee OPERATOR(pg_catalog.<>) r.relowner"
"   AND r.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,S,m,f,v}'::pg_catalog.\"char\"[])"
"   AND (r.relkind OPERATOR(pg_catalog.<>) 'v' OR a.privilege_type OPERATOR(pg_catalog.<>) 'SELECT')"
"   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_init_privs i"
"                     CROSS JOIN LATERAL pg_catalog.aclexplode(i.initprivs) b"
"                    WHERE i.objoid OPERATOR(pg_catalog.=) r.oid AND i.objsubid OPERATOR(pg_catalog.=) t.attnum"
"                      AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
"                      AND b.grantee OPERATOR(pg_catalog.=) a.grantee"
"                      AND b.privilege_type OPERATOR(pg_catalog.=) a.privilege_type)"
" UNION ALL "
"SELECT 'ALTER DEFAULT PRIVILEGES', 'in schema mq'"
"  FROM pg_catalog.pg_default_acl d WHERE d.defaclnamespace OPERATOR(pg_catalog.=) $1"
"   AND EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger_ddl_commands() c"
"                WHERE c.command_tag OPERATOR(pg_catalog.=) 'ALTER DEFAULT PRIVILEGES')"
" LIMIT 1";

/* during the extension's scripts: internal functions created by this command */
static const char *mq_guard_revoke_sql =
"SELECT c.object_identity FROM pg_catalog.pg_event_trigger_ddl_commands() c"
"  JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) c.objid"
" WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass"
"   AND p.pronamespace OPERATOR(pg_catalog.=) $1"
"   AND (pg_catalog.starts_with(p.proname, '_')"
"        OR p.prorettype OPERATOR(pg_catalog.=) ANY ('{trigger,event_trigger}'::pg_catalog.regtype[]))"
"   AND pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')";

/*
 * mq_acl_ddl_guard
 *		The event trigger function mq._ddl_guard(): refuse a command that
 *		left user code or a grant on mq's tables (see above).
 */
Datum
mq_acl_ddl_guard(PG_FUNCTION_ARGS)
{
	Oid			nsp;
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1];

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "mq._ddl_guard() must be called as an event trigger");
	nsp = get_namespace_oid("mq", true);
	if (!OidIsValid(nsp))
		PG_RETURN_VOID();
	args[0] = ObjectIdGetDatum(nsp);

	SPI_connect();
	if (creating_extension)
	{
		int			rc;
		int			n;
		char	  **names;

		rc = SPI_execute_with_args(mq_guard_revoke_sql, 1, argtypes, args,
								   NULL, false, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "mq: guard query failed: %s", SPI_result_code_string(rc));
		n = (int) SPI_processed;
		names = palloc(sizeof(char *) * Max(n, 1));
		for (int i = 0; i < n; i++)
			names[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		for (int i = 0; i < n; i++)
		{
			/* object_identity is quoted and schema-qualified */
			rc = SPI_execute(psprintf("REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC",
									  names[i]), false, 0);
			if (rc != SPI_OK_UTILITY)
				elog(ERROR, "mq: could not revoke EXECUTE on %s", names[i]);
		}
	}
	else
	{
		int			rc;

		rc = SPI_execute_with_args(mq_guard_sql, 1, argtypes, args,
								   NULL, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "mq: guard query failed: %s", SPI_result_code_string(rc));
		if (SPI_processed > 0)
		{
			char	   *tag = SPI_getvalue(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc, 1);
			char	   *what = SPI_getvalue(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 2);

			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("mq's tables are internal: %s %s refused",
							tag, what ? what : ""),
					 errdetail("Triggers, rules, policies, foreign keys and grants on the tables of schema mq would let code or roles bypass mq's privileges."),
					 errhint("Grant mq privileges with mq.grant(); see doc/security.md.")));
		}
	}
	SPI_finish();
	PG_RETURN_VOID();
}
