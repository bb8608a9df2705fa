/tmp/bins/herald-bench persist --users 10 --connections 200 --rooms 200 --window 4 --rate 0 --duration 5 --drain 5 --threads 1 --sources 2
