import os
print("tick from", os.path.basename(os.getcwd()))
