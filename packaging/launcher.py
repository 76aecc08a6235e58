"""PyInstaller's entry script: the `llm-workbench` console script, frozen."""

from ui.entry import main

raise SystemExit(main())
