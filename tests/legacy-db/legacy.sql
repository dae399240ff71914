-- The legacy application's file table, as its database holds it (issue 19, part 1): what
-- `migrate plan --metadata postgres://...` reads. Loaded by scripts/dev for the demo migration
-- (the dev stack's legacy tree has these paths) and by the migration's PostgreSQL test (in a
-- schema of its own, over a tree with the same paths). Its rows cover every case the plan
-- reports: three files with valid rows, a row whose file is gone, and a row that does not
-- validate (an owner that is no user id).
CREATE TABLE uploads (
  id serial PRIMARY KEY,
  file_path text NOT NULL,
  user_id text,
  original_name text,
  mime text,
  uploaded timestamptz,
  is_public boolean NOT NULL DEFAULT false,
  tags text[],
  description text
);

INSERT INTO uploads (file_path, user_id, original_name, mime, uploaded, is_public, tags, description) VALUES
  ('users/demo-user/2019/07/dune.jpg', 'demo-user', 'Dunes at Sylt.jpg', 'image/jpeg',
   '2019-07-14 10:30:00+02', true, '{beach,summer-2019}', 'The view from the terrace'),
  ('users/demo-user/2019/07/ladybird.jpg', 'demo-user', 'Garden ladybird.jpg', 'image/jpeg',
   '2019-07-20 09:15:00+02', false, '{garden}', NULL),
  ('users/demo-user/2021/02/sony-18mp-progressive.jpg', 'demo-user', 'Kitchen in February.jpg', 'image/jpeg',
   '2021-02-03 18:00:00+01', false, '{kitchen,oven}', 'The new oven'),
  ('users/demo-user/2020/01/deleted-long-ago.jpg', 'demo-user', 'Old menu.jpg', 'image/jpeg',
   '2020-01-05 12:00:00+01', false, NULL, NULL),
  ('users/demo-user/2023/03/menu.png', 'Demo User', 'Menu.png', 'image/png',
   '2023-03-01 08:00:00+01', true, '{menu}', NULL);
