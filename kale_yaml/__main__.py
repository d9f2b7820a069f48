from kale_yaml.cli.main import main

raise SystemExit(main())
