from payments.main import main

main()
