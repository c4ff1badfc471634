from wattd.cli.main import main

raise SystemExit(main())
