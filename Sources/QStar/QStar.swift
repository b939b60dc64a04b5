// QStar
