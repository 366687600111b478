from burnless.cli import main

main()
