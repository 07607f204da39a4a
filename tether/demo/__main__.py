import sys

from tether.demo._app import main

sys.exit(main())
