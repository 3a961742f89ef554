-- 14_search_path_public: 04_search_path again, with the shadowing functions,
-- operators and tables planted in public and search_path = public,
-- pg_catalog, as a superuser whose path puts public first would have it.
\set sp public
\ir 04_search_path.sql
