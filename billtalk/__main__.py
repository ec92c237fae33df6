from billtalk.cli import main

main()
