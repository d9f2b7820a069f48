from kale_yaml.cli import main

raise SystemExit(main())
