import sys

from regiond.cli import main

sys.exit(main())
