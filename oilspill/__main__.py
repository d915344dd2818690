from oilspill.cli import main

raise SystemExit(main())
