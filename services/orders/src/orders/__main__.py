from orders.main import main

main()
