"""The history browser (``sms-archiver web``): the archive's SMS in a web page, a JSON API and CSV downloads.

- ``index``: a local SQLite index of the reader's rows (the reader stays the one implementation of
  "each id once, its newest version"), refreshed month by month when the archive changes;
- ``query``: the filters as query parameters, cursor paging, the queries on the index;
- ``versions``: one SMS with every archived version of it;
- ``export``: the CSV download (``retrieve``'s own output when its filters suffice);
- ``auth``: htpasswd (bcrypt) users, or a trusted reverse proxy's header;
- ``chart``: the overview's bar charts, drawn as SVG by the templates;
- ``app``: the Starlette application (routes, security headers, access log);
- ``serve``: uvicorn for ``sms-archiver web``, beside the daemon, and at the end of the demo.
"""
