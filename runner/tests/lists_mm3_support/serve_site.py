"""Serve the REST API of the saved Mailman 3 list-vector site, with [mta] overlays.

    python serve_site.py VECTORS_DIR WORKDIR PORT [KEY=VALUE ...]

$MQ_REST_HOST: the address to listen on (default 127.0.0.1; the operator's end-to-end tests
pass the address runner pods reach the host by).
$MQ_SITE_ROOT: where the template URIs say the site is (default: this copy of it). The
operator's end-to-end tests copy site/templates onto the shared volume and name the path
runner pods see it at, as a Mailman core sharing the volume would.

Like the vectors' own serve_rest.py (a scratch copy of the site database, template
URIs pointed at this copy of site/templates), but runs in the foreground in the
calling Python (no console scripts needed) and adds `[mta] KEY: VALUE` lines: the
vectors were delivered under per-list overlays (see each vector's `site_mta`).
"""

import json
import os
import shutil
import sqlite3
import sys
import textwrap


def main():
    vectors, work, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    overlay = dict(arg.split('=', 1) for arg in sys.argv[4:])
    with open(os.path.join(vectors, 'manifest.json')) as fp:
        manifest = json.load(fp)['mailman3']
    site = os.path.join(vectors, manifest['site_dir'])
    var = os.path.join(work, 'var')
    os.makedirs(os.path.join(var, 'data'), exist_ok=True)
    db = os.path.join(var, 'data', 'mailman.db')
    shutil.copyfile(os.path.join(site, 'var', 'data', 'mailman.db'), db)
    con = sqlite3.connect(db)
    with con:
        con.execute('UPDATE template SET uri = replace(uri, ?, ?)',
                    ('file://' + manifest['site_dir_at_build'] + '/',
                     'file://' + os.environ.get('MQ_SITE_ROOT', os.path.realpath(site)) + '/'))
    con.close()
    mta = ''.join(f'{k}: {v}\n' for k, v in overlay.items())
    cfg = os.path.join(work, 'mailman.cfg')
    with open(cfg, 'w') as fp:
        fp.write(textwrap.dedent(f"""\
            [mailman]
            layout: vectors
            site_owner: postmaster@example.com

            [paths.vectors]
            var_dir: {var}

            [webservice]
            hostname: {os.environ.get('MQ_REST_HOST', '127.0.0.1')}
            port: {port}
            workers: 1
            admin_user: {manifest['rest']['admin_user']}
            admin_pass: {manifest['rest']['admin_pass']}

            [mta]
            smtp_host: 127.0.0.1
            smtp_port: 25
            incoming: mailman.testing.mta.FakeMTA
            """) + mta)
    sys.argv = ['runner', '-C', cfg, '-r', 'rest']
    from mailman.bin.runner import main as runner_main
    runner_main()


if __name__ == '__main__':
    main()
