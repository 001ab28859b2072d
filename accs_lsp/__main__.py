from accs_lsp.cli import main

raise SystemExit(main())
