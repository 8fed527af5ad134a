from roadwatch.cli import main

raise SystemExit(main())
