from tal_bench.cli import main

main()
