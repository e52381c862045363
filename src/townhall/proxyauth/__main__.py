"""``python -m townhall.proxyauth``: the sign-in service without the rest of the CLI."""

from townhall.proxyauth import main

main()
