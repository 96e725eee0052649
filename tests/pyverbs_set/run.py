#!/usr/bin/python3
"""Run the pyverbs test set (or the modules named) against one device.

    run.py -d DEV -g GID_INDEX [module ...]

Debian's /usr/bin/python3 has python3-pyverbs; SYSFS_PATH and the provider
environment must be set (tests/lib.sh: ipd_env).  Exit 0 = all passed.
"""
import argparse
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('-d', '--dev', default='')
    ap.add_argument('-g', '--gid', type=int, default=1)
    ap.add_argument('-v', '--verbose', action='store_true')
    ap.add_argument('modules', nargs='*')
    args = ap.parse_args()
    os.environ['IPD_PY_DEV'] = args.dev
    os.environ['IPD_PY_GID'] = str(args.gid)
    sys.path.insert(0, HERE)
    loader = unittest.TestLoader()
    if args.modules:
        suite = unittest.TestSuite(loader.loadTestsFromName(m)
                                   for m in args.modules)
    else:
        suite = loader.discover(HERE, pattern='test_*.py', top_level_dir=HERE)
    res = unittest.TextTestRunner(verbosity=2 if args.verbose else 1).run(suite)
    return 0 if res.wasSuccessful() else 1


if __name__ == '__main__':
    sys.exit(main())
