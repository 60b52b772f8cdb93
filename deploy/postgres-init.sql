-- Run once by the postgres image, as POSTGRES_USER, when its data volume is first
-- initialised (files in /docker-entrypoint-initdb.d are skipped on later starts).
--
-- Creates the databases the stack needs, each only if it is missing (so this also works
-- when POSTGRES_DB names one of them):
--   temporal, temporal_visibility  Temporal's persistence and visibility stores; the
--                                  temporal-schema job installs and migrates their
--                                  schemas (its create step finds them here already).
--   complaints                     the complaints engine's own tables (the worker runs
--                                  `complaints db upgrade` against it on start).
-- \gexec runs each generated statement: CREATE DATABASE cannot run inside a DO block.

SELECT 'CREATE DATABASE temporal'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'temporal')\gexec

SELECT 'CREATE DATABASE temporal_visibility'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'temporal_visibility')\gexec

SELECT 'CREATE DATABASE complaints'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'complaints')\gexec
