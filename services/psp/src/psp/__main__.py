from psp.main import main

main()
