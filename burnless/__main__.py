from burnless.entry import main

main()
