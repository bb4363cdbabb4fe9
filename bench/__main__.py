"""`python -m bench [names...] [--quick] [--strict] [--list]`: see `bench.harness`."""

from bench.harness import main

raise SystemExit(main())
