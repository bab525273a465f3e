from firebox.cli.main import main

main()
