# moto's standalone server, started the way `moto_server` starts it, with two of moto 5.2.5's
# per-request lookups answered once instead of on every request. Both read things that cannot
# change while the server runs, so moto answers exactly as before, only sooner:
#
# * `moto.backends.list_of_moto_modules` lists moto's installed package directory (a listdir and
#   one stat per entry, about 60) to route each request to its service;
# * `moto.core.utils.method_names_from_class`, called by every response class on every request,
#   walks the class with `inspect.getmembers` (EC2's response class has hundreds of methods).
#
# Measured against moto_server on one request at a time: EC2 DescribeRouteTables 5.9-7.6 ms to
# 2.3-3.6, Secrets Manager GetSecretValue 3.5-4.9 to 1.7, a conditional DynamoDB PutItem 3.3-4.4
# to 2.4-2.9. A moto without either function runs unchanged, and says so in its log.
import functools
import sys

import moto.backends
import moto.core.responses
import moto.core.utils

if callable(getattr(moto.backends, "list_of_moto_modules", None)):
    _modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: _modules
else:
    print("sitefence: moto.backends.list_of_moto_modules is gone; not cached", flush=True)

if callable(getattr(moto.core.responses, "method_names_from_class", None)):
    moto.core.responses.method_names_from_class = functools.lru_cache(maxsize=None)(
        moto.core.utils.method_names_from_class
    )
else:
    print("sitefence: moto.core.responses.method_names_from_class is gone; not cached", flush=True)

from moto.server import main  # noqa: E402  (after the patches, which it must see)

main(sys.argv[1:])
