-- workload.sql — a deterministic sqlite3 workload for the transparency tests.
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, value REAL);
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 5000)
INSERT INTO t(id, grp, name, value)
SELECT n, n % 37, printf('name-%05d-%s', n, substr('abcdefghijklmnopqrstuvwxyz', 1 + n % 26, 5)), (n * 7919 % 10007) / 13.0
FROM seq;
CREATE INDEX t_grp ON t(grp);
CREATE TABLE u AS SELECT grp, count(*) AS c, sum(value) AS s, max(name) AS m FROM t GROUP BY grp;
SELECT grp, count(*), round(sum(value), 4), min(name), max(name) FROM t GROUP BY grp ORDER BY grp;
SELECT name, value FROM t WHERE value > 700 ORDER BY value DESC, name LIMIT 25;
SELECT u.grp, u.c, t.name FROM u JOIN t ON t.grp = u.grp AND t.id % 500 = 0 ORDER BY u.grp, t.name;
UPDATE t SET value = value * 2 WHERE grp % 3 = 0;
DELETE FROM t WHERE id % 11 = 0;
SELECT count(*), round(sum(value), 4), round(avg(length(name)), 4) FROM t;
SELECT group_concat(name, ',') FROM (SELECT name FROM t WHERE grp = 5 ORDER BY name DESC LIMIT 40);
SELECT substr(upper(name), 1, 8) AS k, count(*) FROM t GROUP BY k ORDER BY count(*) DESC, k LIMIT 20;
