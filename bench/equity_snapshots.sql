-- 1,000,000 equity snapshots across 100 users, one account each (deterministic), for the equity-snapshot
-- admin benchmark:
--   psql -h 127.0.0.1 -U postgres <db> -f bench/equity_snapshots.sql
-- One snapshot per account every 5 s from 2026-01-01; 1 in 50 at warning, 1 in 500 critical.
INSERT INTO auth_user (username, password, is_superuser, is_staff, is_active, first_name, last_name, email, date_joined)
SELECT 'snap' || lpad(u::text, 3, '0'), '!', false, false, true, '', '', '', now()
FROM generate_series(1, 100) AS u
ON CONFLICT (username) DO NOTHING;

INSERT INTO accounts_account (user_id, server, login, name, company, currency, currency_digits, margin_mode,
                              server_utc_offset, created_at, updated_at)
SELECT id, 'Bench-Server', 5000000 + id, '', '', 'USD', 2, 2, 0, now(), now()
FROM auth_user WHERE username LIKE 'snap___'
ON CONFLICT (user_id, server, login) DO NOTHING;

INSERT INTO guards_equitysnapshot (sync_id, broker_time, login, currency, balance, equity, margin, margin_free,
                                   peak_equity, drawdown_pct, cash_flow, equity_index, drawdown_level,
                                   margin_guard_level, open_positions, created_at, user_id, account_id)
SELECT md5(n::text)::uuid,
       timestamptz '2026-01-01 00:00:00+00' + ((n / 100) * interval '5 seconds'),
       a.login,
       'USD', 10000.00, 10000.00 - (n % 1000), 0, 10000.00 - (n % 1000), 10000.00,
       ((n % 1000) / 100.0)::numeric(7, 4), 0, 1,
       CASE WHEN n % 500 = 0 THEN 'critical' WHEN n % 50 = 0 THEN 'warning' ELSE 'ok' END,
       'ok',
       n % 5,
       timestamptz '2026-01-01 00:00:00+00' + ((n / 100) * interval '5 seconds'),
       a.user_id, a.id
FROM generate_series(1, 1000000) AS n
JOIN auth_user u ON u.username = 'snap' || lpad((n % 100 + 1)::text, 3, '0')
JOIN accounts_account a ON a.user_id = u.id AND a.server = 'Bench-Server';
ANALYZE guards_equitysnapshot;
