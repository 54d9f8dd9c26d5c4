-- pg_flink install script, part: pipeline results as tables (flink.expose_results), after the
-- wrappers (50_fdw.sql) and before the privileges (90_grants.sql).

-- Pipeline results as tables: a foreign table over a pipeline's Kafka topic or Elasticsearch
-- index, in schema `into_schema`, named after the pipeline, with the Postgres types that hold
-- exactly what Flink writes (flink.pipeline_sink). Re-running brings an existing table up to
-- date in place (ALTER: columns added, dropped or retyped, the topic/index option), so its
-- relid, grants, comments and the views on it survive; nothing changes when nothing has.
-- with_view => true also makes the plain view <into_schema>.<pipeline>_v over it (for tools
-- that list only tables and views); both are recorded in flink.result_table.
-- sink_object => '<object>' exposes another of the pipeline's sinks (flink.pipeline_sinks: a
-- branch's, a source's late rows, a raw SQL pipeline's other tables) as <pipeline>_<object>.
CREATE FUNCTION flink.expose_results(pipeline text, into_schema text DEFAULT 'flink_results',
                                     with_view boolean DEFAULT false, sink_object text DEFAULT NULL)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  p flink.pipeline;
  sink jsonb;
  base text;
  fdw text;
  srv text;
  cur_fdw text;
  opt_key text;
  want_names text[];
  want_types text[];
  tbl text;
  rel regclass;
  vname text;
  vtbl text;
  vrel regclass;
  our_view regclass;
  cur_srv text;
  cur_opt text;
  c record;
  actions text[] := '{}';
  touched text[] := '{}';
  dep record;
  g record;
  v_acl aclitem[];
  v_owner oid;
  v_comment text;
  recreate_view boolean := false;
  old_acl aclitem[];
  old_owner oid;
  comment_text text;
BEGIN
  SELECT * INTO p FROM flink.pipeline WHERE name = expose_results.pipeline;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pipeline "%" does not exist', expose_results.pipeline
      USING ERRCODE = 'undefined_object', HINT = 'See flink.pipelines for the stored pipelines.';
  END IF;
  IF sink_object IS NULL THEN
    sink := flink.pipeline_sink(p.name);
    base := p.name;
  ELSE
    SELECT s INTO sink FROM flink.pipeline_sinks(p.name) AS s WHERE s->>'object' = sink_object
     ORDER BY (s->>'sink_no')::int LIMIT 1;
    IF sink IS NULL THEN
      RAISE EXCEPTION 'pipeline "%" writes no sink with object "%"', p.name, sink_object
        USING ERRCODE = 'undefined_object',
              HINT = format('Its sinks: %s (see flink.pipeline_sinks).',
                            (SELECT string_agg(s->>'object', ', ' ORDER BY (s->>'sink_no')::int) FROM flink.pipeline_sinks(p.name) AS s));
    END IF;
    base := p.name || '_' || sink_object;
    IF octet_length(base) > 63 THEN
      RAISE EXCEPTION 'pipeline "%": the results table name "%" is longer than 63 bytes', p.name, base
        USING ERRCODE = 'name_too_long', HINT = 'Use a shorter pipeline or object name, or create the foreign table yourself.';
    END IF;
  END IF;
  IF sink IS NULL OR sink->>'kind' NOT IN ('kafka', 'elasticsearch') THEN
    RAISE EXCEPTION 'pipeline "%" does not write to Kafka or Elasticsearch (sink: %)', p.name,
      COALESCE(sink->>'kind', 'inside its raw SQL')
      USING ERRCODE = 'wrong_object_type',
            HINT = 'Results tables exist for Kafka and Elasticsearch sinks; a Postgres sink is already a table.';
  END IF;
  vname := base || '_v';
  IF with_view AND octet_length(vname) > 63 THEN
    RAISE EXCEPTION 'pipeline "%": the view name "%" is longer than 63 bytes', p.name, vname
      USING ERRCODE = 'name_too_long',
            HINT = 'Create a view over the results table yourself, or use a shorter pipeline name.';
  END IF;
  tbl := format('%I.%I', into_schema, base);
  vtbl := format('%I.%I', into_schema, vname);

  -- The columns, metadata first and last, with the types format_type spells.
  IF sink->>'kind' = 'kafka' THEN
    fdw := 'pg_flink_kafka';
    opt_key := 'topic';
    want_names := ARRAY['_partition', '_offset', '_timestamp', '_key', '_headers'];
    want_types := ARRAY['integer', 'bigint', 'timestamp with time zone', 'text', 'jsonb'];
  ELSE
    fdw := 'pg_flink_elasticsearch';
    opt_key := 'index';
    want_names := ARRAY['_id'];
    want_types := ARRAY['text'];
  END IF;
  SELECT want_names || COALESCE(array_agg(x.c->>'name' ORDER BY x.o), '{}'),
         want_types || COALESCE(array_agg(x.c->>'pg_type' ORDER BY x.o), '{}')
    INTO want_names, want_types
    FROM jsonb_array_elements(sink->'columns') WITH ORDINALITY AS x(c, o)
   WHERE x.c->>'name' NOT LIKE '\_%';
  IF sink->>'kind' = 'kafka' THEN
    want_names := want_names || ARRAY['_error'];
    want_types := want_types || ARRAY['text'];
  ELSE
    want_names := want_names || ARRAY['_score', '_index'];
    want_types := want_types || ARRAY['double precision', 'text'];
  END IF;

  srv := 'pg_flink_' || (sink->>'datasource');
  SELECT w.fdwname INTO cur_fdw FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
   WHERE s.srvname = srv;
  IF cur_fdw IS NULL THEN
    EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER %I OPTIONS (datasource %L)', srv, fdw, sink->>'datasource');
  ELSIF cur_fdw <> fdw THEN
    RAISE EXCEPTION 'server "%" exists but uses foreign-data wrapper %, not %', srv, cur_fdw, fdw
      USING ERRCODE = 'duplicate_object', HINT = 'Rename or drop that server.';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = into_schema) THEN
    EXECUTE format('CREATE SCHEMA %I', into_schema);
  END IF;

  rel := to_regclass(tbl);
  IF octet_length(vname) <= 63 THEN
    vrel := to_regclass(vtbl);
  END IF;
  -- The view made by an earlier with_view => true (kept up to date even when not asked again).
  SELECT r.relid::regclass INTO our_view FROM flink.result_table r JOIN pg_class k ON k.oid = r.relid
   WHERE r.pipeline = p.name AND k.relkind = 'v' AND k.oid = vrel;
  IF with_view AND vrel IS NOT NULL AND our_view IS NULL THEN
    RAISE EXCEPTION 'relation % exists and was not made by flink.expose_results for pipeline "%"', vtbl, p.name
      USING ERRCODE = 'duplicate_table', HINT = 'Rename or drop it, or call flink.expose_results without with_view.';
  END IF;

  IF rel IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = rel AND k.relkind = 'f') THEN
    RAISE EXCEPTION 'relation % exists and is not a foreign table', tbl
      USING ERRCODE = 'duplicate_table', HINT = 'Rename or drop it, or pass another into_schema.';
  END IF;
  IF rel IS NOT NULL THEN
    SELECT s.srvname, (SELECT o.option_value FROM pg_options_to_table(ft.ftoptions) o WHERE o.option_name = opt_key)
      INTO cur_srv, cur_opt
      FROM pg_foreign_table ft JOIN pg_foreign_server s ON s.oid = ft.ftserver WHERE ft.ftrelid = rel;
    IF cur_srv <> srv THEN
      -- A foreign table cannot change server: re-create it (and its view), keeping grants.
      FOR dep IN SELECT DISTINCT v.oid::regclass AS dep_view, a.attname AS col
                     FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
                     LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                      AND d.refobjid = rel AND v.oid <> rel AND v.oid IS DISTINCT FROM our_view
                      
                    ORDER BY 1, 2 LOOP
        RAISE EXCEPTION 'results table % must be re-created (its pipeline now writes to datasource "%", server %), but view % depends on it',
          tbl, sink->>'datasource', srv, dep.dep_view
          USING ERRCODE = 'dependent_objects_still_exist',
                HINT = format('Drop view %s, run flink.expose_results again, then re-create the view.', dep.dep_view);
      END LOOP;
      recreate_view := our_view IS NOT NULL;
      SELECT k.relacl, k.relowner INTO old_acl, old_owner FROM pg_class k WHERE k.oid = rel;
    ELSE
      -- Columns to drop, retype and add.
      FOR c IN SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS ty, w.ty AS want
                 FROM pg_attribute a
                 LEFT JOIN unnest(want_names, want_types) AS w(name, ty) ON w.name = a.attname
                WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum LOOP
        IF c.want IS NULL THEN
          actions := actions || format('DROP COLUMN %I', c.name);
          touched := touched || c.name;
        ELSIF c.want <> c.ty THEN
          actions := actions || format('ALTER COLUMN %I TYPE %s', c.name, c.want);
          touched := touched || c.name;
        END IF;
      END LOOP;
      FOR c IN SELECT w.name, w.ty FROM unnest(want_names, want_types) WITH ORDINALITY AS w(name, ty, o)
                WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = w.name
                                     AND a.attnum > 0 AND NOT a.attisdropped)
                ORDER BY w.o LOOP
        actions := actions || format('ADD COLUMN %I %s', c.name, c.ty);
      END LOOP;
      IF cardinality(touched) > 0 THEN
        FOR dep IN SELECT DISTINCT v.oid::regclass AS dep_view, a.attname AS col
                     FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
                     LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                      AND d.refobjid = rel AND v.oid <> rel AND v.oid IS DISTINCT FROM our_view
                      AND a.attname = ANY (touched)
                    ORDER BY 1, 2 LOOP
          RAISE EXCEPTION 'results table % cannot follow pipeline "%": view % depends on column "%", which the pipeline %',
            tbl, p.name, dep.dep_view, dep.col,
            CASE WHEN dep.col = ANY (want_names) THEN 'now writes as ' || want_types[array_position(want_names, dep.col::text)]
                 ELSE 'no longer writes' END
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = 'Postgres cannot drop or change the type of a column a view uses.',
                  HINT = format('Drop view %s (or stop it from using column "%s"), run flink.expose_results again, then re-create the view.', dep.dep_view, dep.col);
        END LOOP;
        recreate_view := our_view IS NOT NULL;
      END IF;
    END IF;
  END IF;

  -- Our own view: dropped before the table changes under it, re-created after, grants kept.
  IF recreate_view THEN
    FOR dep IN SELECT DISTINCT v.oid::regclass AS dep_view, a.attname AS col
                     FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
                     LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                    WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
                      AND d.refobjid = our_view AND v.oid <> our_view AND v.oid IS DISTINCT FROM NULL::oid
                      
                    ORDER BY 1, 2 LOOP
      RAISE EXCEPTION 'results view % must be re-created for pipeline "%", but view % depends on it', our_view, p.name, dep.dep_view
        USING ERRCODE = 'dependent_objects_still_exist',
              HINT = format('Drop view %s, run flink.expose_results again, then re-create it.', dep.dep_view);
    END LOOP;
    SELECT k.relacl, k.relowner, obj_description(k.oid, 'pg_class') INTO v_acl, v_owner, v_comment
      FROM pg_class k WHERE k.oid = our_view;
    EXECUTE format('DROP VIEW %s', our_view);
    our_view := NULL;
  END IF;

  IF rel IS NOT NULL AND cur_srv <> srv THEN
    EXECUTE format('DROP FOREIGN TABLE %s', rel);
    rel := NULL;
  END IF;
  IF rel IS NULL THEN
    EXECUTE format('CREATE FOREIGN TABLE %s (%s) SERVER %I OPTIONS (%s %L)', tbl,
                   (SELECT string_agg(format('%I %s', w.name, w.ty), ', ' ORDER BY w.o)
                      FROM unnest(want_names, want_types) WITH ORDINALITY AS w(name, ty, o)),
                   srv, opt_key, sink->>'object');
    rel := to_regclass(tbl);
    IF old_acl IS NOT NULL THEN
      FOR g IN SELECT x.grantee, x.privilege_type, x.is_grantable FROM aclexplode(old_acl) x
                WHERE x.grantee <> old_owner ORDER BY x.grantee, x.privilege_type LOOP
        EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, rel,
                       CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
    END IF;
  ELSE
    IF cur_opt IS NULL THEN
      actions := actions || format('OPTIONS (ADD %I %L)', opt_key, sink->>'object');
    ELSIF cur_opt <> sink->>'object' THEN
      actions := actions || format('OPTIONS (SET %I %L)', opt_key, sink->>'object');
    END IF;
    IF cardinality(actions) > 0 THEN
      EXECUTE format('ALTER FOREIGN TABLE %s %s', rel, array_to_string(actions, ', '));
    END IF;
  END IF;
  comment_text := format('Results of pipeline %s (%s %s), created by flink.expose_results()', p.name, sink->>'kind', sink->>'object');
  IF obj_description(rel, 'pg_class') IS DISTINCT FROM comment_text THEN
    EXECUTE format('COMMENT ON FOREIGN TABLE %s IS %L', rel, comment_text);
  END IF;
  DELETE FROM flink.result_table r WHERE r.pipeline = p.name AND NOT EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = r.relid);
  INSERT INTO flink.result_table (pipeline, relid) VALUES (p.name, rel) ON CONFLICT DO NOTHING;

  -- The view: every column of the table, in its order. Columns only added: CREATE OR REPLACE
  -- (the view keeps its grants and dependents); anything else re-created it above.
  IF with_view OR our_view IS NOT NULL OR recreate_view THEN
    IF our_view IS NULL OR cardinality(actions) > 0 THEN
      EXECUTE format('CREATE OR REPLACE VIEW %s AS SELECT %s FROM %s', vtbl,
                     (SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
                       WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped),
                     rel);
    END IF;
    IF our_view IS NULL THEN
      our_view := to_regclass(vtbl);
      IF v_acl IS NOT NULL THEN
        FOR g IN SELECT x.grantee, x.privilege_type, x.is_grantable FROM aclexplode(v_acl) x
                WHERE x.grantee <> v_owner ORDER BY x.grantee, x.privilege_type LOOP
        EXECUTE format('GRANT %s ON %s TO %s%s', g.privilege_type, our_view,
                       CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(g.grantee)) END,
                       CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
      END LOOP;
      END IF;
      EXECUTE format('COMMENT ON VIEW %s IS %L', our_view,
                     COALESCE(v_comment, format('Results of pipeline %s: view over %s, created by flink.expose_results()', p.name, rel)));
      INSERT INTO flink.result_table (pipeline, relid) VALUES (p.name, our_view) ON CONFLICT DO NOTHING;
    END IF;
  END IF;
  RETURN rel;
END
$fn$;
COMMENT ON FUNCTION flink.expose_results(text, text, boolean, text) IS
  'Creates, or brings up to date in place (keeping grants, comments and dependent views), a foreign table named after the pipeline in into_schema over its Kafka topic or Elasticsearch index, with the pipeline''s output columns in the Postgres types that hold what Flink writes, and the metadata columns; with_view => true also creates the view <into_schema>.<pipeline>_v over it; sink_object => another of its sinks (flink.pipeline_sinks) as <pipeline>_<object>. Returns the foreign table.';
