from skewlab.cli import main

main()
