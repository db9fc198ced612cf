from mercato_cli.main import main

main()
